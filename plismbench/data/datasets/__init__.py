"""Registered multi-condition datasets: one typed spec per dataset, and users' manifests."""

from plismbench.data.datasets.spec import (
    REPLICATE,
    DatasetSpec,
    Factor,
    Source,
    TileGeometry,
    dataset_of_units,
    get_dataset,
    list_datasets,
    pair_type_name,
    pair_types_of,
    register_dataset,
)

__all__ = [
    "REPLICATE",
    "DatasetSpec",
    "Factor",
    "Source",
    "TileGeometry",
    "dataset_of_units",
    "get_dataset",
    "list_datasets",
    "pair_type_name",
    "pair_types_of",
    "register_dataset",
]
