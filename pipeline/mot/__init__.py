"""MOTChallenge data layer (MOT15/16/17/20): the public API other modules import.

Implementation in the submodules ``seqinfo``, ``boxes``, ``sequence``; the MOT tracking glue is ``tracking``,
the benchmark's detection sets ``bench_sets``:

* :func:`read_seqinfo` -> :class:`SeqInfo`
* :func:`read_mot_file` -> :class:`MOTBoxes` (gt / det / result rows, columnar)
* :func:`write_mot_results` (``frame,id,x,y,w,h,score,-1,-1,-1``)
* :func:`detections_by_frame` -> ``{frame: [Detection]}``
* :class:`MOTSequence` (frames from ``img1/`` or a video, ``det/*.txt`` by name, ``gt/gt.txt``)
* :func:`find_sequences`

Malformed input raises a one-line :class:`pipeline.core.errors.DataError` naming
file and line (or key).
"""

from pipeline.mot.boxes import MOTBoxes, detections_by_frame, read_mot_file, write_mot_results
from pipeline.mot.seqinfo import SeqInfo, read_seqinfo
from pipeline.mot.sequence import MOTSequence, find_sequences

__all__ = [
    "MOTBoxes", "MOTSequence", "SeqInfo", "detections_by_frame", "find_sequences",
    "read_mot_file", "read_seqinfo", "write_mot_results",
]
