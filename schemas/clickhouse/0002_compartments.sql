-- Compartments: one table per SynDB compartment type. Every row belongs to
-- a dataset (dataset_id), has its own id (cid) and, where the compartment
-- sits inside another, the parent's cid (parent_id) and type (parent_enum).
-- Metrics are nullable: not every lab measures every metric.
CREATE TABLE IF NOT EXISTS neuron (
    dataset_id             UUID,
    cid                    UUID,
    parent_id              Nullable(UUID),
    parent_enum            Nullable(UInt8),
    voxel_volume           Nullable(Float64),
    voxel_radius           Nullable(Float64),
    mesh_volume            Nullable(Float64),
    mesh_surface_area      Nullable(Float64),
    mesh_area_volume_ratio Nullable(Float64),
    mesh_sphericity        Nullable(Float64),
    centroid_x             Nullable(Float64),
    centroid_y             Nullable(Float64),
    centroid_z             Nullable(Float64),
    s3_mesh_location       Nullable(String),
    neuron_type            Nullable(String),
    terminal_count         Nullable(UInt32)
) ENGINE = MergeTree()
ORDER BY (dataset_id, cid);

CREATE TABLE IF NOT EXISTS axon (
    dataset_id             UUID,
    cid                    UUID,
    parent_id              Nullable(UUID),
    parent_enum            Nullable(UInt8),
    voxel_volume           Nullable(Float64),
    voxel_radius           Nullable(Float64),
    mesh_volume            Nullable(Float64),
    mesh_surface_area      Nullable(Float64),
    mesh_area_volume_ratio Nullable(Float64),
    mesh_sphericity        Nullable(Float64),
    centroid_x             Nullable(Float64),
    centroid_y             Nullable(Float64),
    centroid_z             Nullable(Float64),
    s3_mesh_location       Nullable(String),
    branch_count           Nullable(UInt32)
) ENGINE = MergeTree()
ORDER BY (dataset_id, cid);

CREATE TABLE IF NOT EXISTS dendrite (
    dataset_id             UUID,
    cid                    UUID,
    parent_id              Nullable(UUID),
    parent_enum            Nullable(UInt8),
    voxel_volume           Nullable(Float64),
    voxel_radius           Nullable(Float64),
    mesh_volume            Nullable(Float64),
    mesh_surface_area      Nullable(Float64),
    mesh_area_volume_ratio Nullable(Float64),
    mesh_sphericity        Nullable(Float64),
    centroid_x             Nullable(Float64),
    centroid_y             Nullable(Float64),
    centroid_z             Nullable(Float64),
    s3_mesh_location       Nullable(String),
    branch_count           Nullable(UInt32)
) ENGINE = MergeTree()
ORDER BY (dataset_id, cid);

CREATE TABLE IF NOT EXISTS dendritic_spine (
    dataset_id             UUID,
    cid                    UUID,
    parent_id              Nullable(UUID),
    parent_enum            Nullable(UInt8),
    voxel_volume           Nullable(Float64),
    voxel_radius           Nullable(Float64),
    mesh_volume            Nullable(Float64),
    mesh_surface_area      Nullable(Float64),
    mesh_area_volume_ratio Nullable(Float64),
    mesh_sphericity        Nullable(Float64),
    centroid_x             Nullable(Float64),
    centroid_y             Nullable(Float64),
    centroid_z             Nullable(Float64),
    s3_mesh_location       Nullable(String),
    spine_type             Nullable(String)
) ENGINE = MergeTree()
ORDER BY (dataset_id, cid);

CREATE TABLE IF NOT EXISTS pre_synapse (
    dataset_id             UUID,
    cid                    UUID,
    parent_id              Nullable(UUID),
    parent_enum            Nullable(UInt8),
    voxel_volume           Nullable(Float64),
    voxel_radius           Nullable(Float64),
    mesh_volume            Nullable(Float64),
    mesh_surface_area      Nullable(Float64),
    mesh_area_volume_ratio Nullable(Float64),
    mesh_sphericity        Nullable(Float64),
    centroid_x             Nullable(Float64),
    centroid_y             Nullable(Float64),
    centroid_z             Nullable(Float64),
    s3_mesh_location       Nullable(String),
    vesicle_count          Nullable(UInt32),
    neurotransmitter       Nullable(String)
) ENGINE = MergeTree()
ORDER BY (dataset_id, cid);

CREATE TABLE IF NOT EXISTS post_synapse (
    dataset_id             UUID,
    cid                    UUID,
    parent_id              Nullable(UUID),
    parent_enum            Nullable(UInt8),
    voxel_volume           Nullable(Float64),
    voxel_radius           Nullable(Float64),
    mesh_volume            Nullable(Float64),
    mesh_surface_area      Nullable(Float64),
    mesh_area_volume_ratio Nullable(Float64),
    mesh_sphericity        Nullable(Float64),
    centroid_x             Nullable(Float64),
    centroid_y             Nullable(Float64),
    centroid_z             Nullable(Float64),
    s3_mesh_location       Nullable(String),
    psd_area               Nullable(Float64)
) ENGINE = MergeTree()
ORDER BY (dataset_id, cid);

CREATE TABLE IF NOT EXISTS synapse (
    dataset_id             UUID,
    cid                    UUID,
    parent_id              Nullable(UUID),
    parent_enum            Nullable(UInt8),
    voxel_volume           Nullable(Float64),
    voxel_radius           Nullable(Float64),
    mesh_volume            Nullable(Float64),
    mesh_surface_area      Nullable(Float64),
    mesh_area_volume_ratio Nullable(Float64),
    mesh_sphericity        Nullable(Float64),
    centroid_x             Nullable(Float64),
    centroid_y             Nullable(Float64),
    centroid_z             Nullable(Float64),
    s3_mesh_location       Nullable(String),
    pre_id                 Nullable(UUID),
    post_id                Nullable(UUID),
    cleft_width            Nullable(Float64),
    neurotransmitter       Nullable(String)
) ENGINE = MergeTree()
ORDER BY (dataset_id, cid);

CREATE TABLE IF NOT EXISTS vesicle (
    dataset_id             UUID,
    cid                    UUID,
    parent_id              Nullable(UUID),
    parent_enum            Nullable(UInt8),
    voxel_volume           Nullable(Float64),
    voxel_radius           Nullable(Float64),
    mesh_volume            Nullable(Float64),
    mesh_surface_area      Nullable(Float64),
    mesh_area_volume_ratio Nullable(Float64),
    mesh_sphericity        Nullable(Float64),
    centroid_x             Nullable(Float64),
    centroid_y             Nullable(Float64),
    centroid_z             Nullable(Float64),
    s3_mesh_location       Nullable(String),
    distance_to_active_zone Nullable(Float64),
    minimum_normal_length  Nullable(Float64),
    neurotransmitter       Nullable(String)
) ENGINE = MergeTree()
ORDER BY (dataset_id, cid);

CREATE TABLE IF NOT EXISTS mitochondria (
    dataset_id             UUID,
    cid                    UUID,
    parent_id              Nullable(UUID),
    parent_enum            Nullable(UInt8),
    voxel_volume           Nullable(Float64),
    voxel_radius           Nullable(Float64),
    mesh_volume            Nullable(Float64),
    mesh_surface_area      Nullable(Float64),
    mesh_area_volume_ratio Nullable(Float64),
    mesh_sphericity        Nullable(Float64),
    centroid_x             Nullable(Float64),
    centroid_y             Nullable(Float64),
    centroid_z             Nullable(Float64),
    s3_mesh_location       Nullable(String)
) ENGINE = MergeTree()
ORDER BY (dataset_id, cid);

CREATE TABLE IF NOT EXISTS endoplasmic_reticulum (
    dataset_id             UUID,
    cid                    UUID,
    parent_id              Nullable(UUID),
    parent_enum            Nullable(UInt8),
    voxel_volume           Nullable(Float64),
    voxel_radius           Nullable(Float64),
    mesh_volume            Nullable(Float64),
    mesh_surface_area      Nullable(Float64),
    mesh_area_volume_ratio Nullable(Float64),
    mesh_sphericity        Nullable(Float64),
    centroid_x             Nullable(Float64),
    centroid_y             Nullable(Float64),
    centroid_z             Nullable(Float64),
    s3_mesh_location       Nullable(String)
) ENGINE = MergeTree()
ORDER BY (dataset_id, cid);
