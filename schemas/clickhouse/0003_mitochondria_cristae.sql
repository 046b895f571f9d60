-- Mitochondria gain cristae measurements. ADD COLUMN has no IF NOT EXISTS on
-- older ClickHouse; the migrator skips an ADD COLUMN whose column exists, so a
-- re-run after a partial apply succeeds.
ALTER TABLE mitochondria ADD COLUMN cristae_count Nullable(UInt32);
ALTER TABLE mitochondria ADD COLUMN cristae_surface_area Nullable(Float64);
