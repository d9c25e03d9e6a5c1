"""Re-id learning data: the MOT-derived crop/triplet generator, the on-disk format, loaders.

* ``selection``   pure gt-row selection, identity splits, pair/triplet sampling, tracklet runs
* ``mot_builder`` cut, resize and write a dataset from MOT sequences (seed 000 §4.1)
* ``index``       on-disk format readers (index.csv, pairs, triplets, tracklets) and Market-1501 folders
* ``torch_data``  ReidImageDataset / TrackletDataset for training and evaluation
"""

from reid_models.datasets.index import (
    CropItem, load_index, load_market_folder, load_pairs, load_tracklets, load_triplets,
)
from reid_models.datasets.selection import SelectionConfig, select_rows, split_identities

__all__ = [
    "CropItem", "SelectionConfig", "load_index", "load_market_folder", "load_pairs", "load_tracklets",
    "load_triplets", "select_rows", "split_identities",
]
