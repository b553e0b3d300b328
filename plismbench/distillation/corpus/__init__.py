"""Tile corpora for distillation: any folder of images, parquet, tar or h5 shards.

``open_corpus(spec)`` indexes a corpus once (numpy arrays, cached shard indexes) and gives
random access to its tiles; `CorpusLoader` streams seeded, resumable, rank-sharded
steps of them through a multi-worker DataLoader. A PLISM tile source is accepted with a
loud warning: the student would train on the benchmark's own evaluation tiles.
"""

from plismbench.distillation.corpus.base import TileCorpus
from plismbench.distillation.corpus.convert import write_tar_shards
from plismbench.distillation.corpus.loader import CorpusLoader
from plismbench.distillation.corpus.order import StreamOrder
from plismbench.distillation.corpus.plism import PLISM_WARNING, PlismCorpusWarning
from plismbench.distillation.corpus.spec import open_corpus

__all__ = [
    "PLISM_WARNING",
    "CorpusLoader",
    "PlismCorpusWarning",
    "StreamOrder",
    "TileCorpus",
    "open_corpus",
    "write_tar_shards",
]
