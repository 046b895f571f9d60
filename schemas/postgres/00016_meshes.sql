-- +goose Up
-- The compartments' surface meshes the hub holds in its meshes bucket
-- (s3://syndb-meshes/{cluster}/{dataset_id}/{table_name}/{cid}.glb), one row
-- per compartment: what the MeshIngest workflow validated, measured and
-- wrote into the compartment's row on its node (and the seed's meshes). The
-- catalog counts them per dataset. cluster is not a foreign key: a mesh
-- outlives a node's revocation, as its object does.
CREATE TABLE meshes (
    cluster           TEXT NOT NULL,
    dataset_id        UUID NOT NULL,
    table_name        TEXT NOT NULL,
    cid               UUID NOT NULL,
    object            TEXT NOT NULL,
    format            TEXT NOT NULL,
    bytes             BIGINT NOT NULL CHECK (bytes >= 0),
    sha256            TEXT NOT NULL,
    vertices          INTEGER NOT NULL CHECK (vertices >= 0),
    triangles         INTEGER NOT NULL CHECK (triangles >= 0),
    volume            DOUBLE PRECISION NOT NULL,
    surface_area      DOUBLE PRECISION NOT NULL,
    area_volume_ratio DOUBLE PRECISION NOT NULL,
    sphericity        DOUBLE PRECISION NOT NULL,
    workflow_id       TEXT NOT NULL DEFAULT '',
    ingested_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (cluster, dataset_id, table_name, cid)
);

-- +goose Down
DROP TABLE meshes;
