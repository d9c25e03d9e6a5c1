"""The on-disk re-id dataset format and folder loaders.

A dataset folder (written by ``reid-pipeline make-triplets``) holds::

    crops/<seq>/<pid>_<frame>.jpg     resized crops (128x64 by default), BGR JPEG
    index.csv                         path,pid,camid,seq,frame,split[,local_id]
    pairs_test.csv                    a,b,same         (balanced, seed 000 §5.1)
    triplets_train.csv                anchor,positive,negative
    triplets_test.csv                 anchor,positive,negative (for Eq. 5 accuracy)
    tracklets.json                    [{pid, camid, seq, split, frames: [...], paths: [...]}]
    summary.json                      identities / crops / pairs / triplets / tracklets per split

Paths inside the CSV/JSON files are relative to the dataset folder.
Market-1501-style folders (``0002_c1s1_000451_03.jpg``) load with
:func:`load_market_folder`, CUHK03-style folders (``PPPP_II.jpg``) with
:func:`load_cuhk03_folder`, CUHK01-style (``PPPPIII.png``) with :func:`load_cuhk01_folder`, folders with a
sub-folder per camera (VIPeR, PRID2011, GRID, iLIDS-VID) with
:func:`load_camera_folders`, MARS-style per-person folders with :func:`load_mars_folder`;
:func:`load_reid_folder` picks the reader by format name.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path

from pipeline.core.errors import DataError

INDEX_COLUMNS = ("path", "pid", "camid", "seq", "frame", "split")
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
#: the identity of Market-1501's distractors, and of a camera-folder set's one-camera number-0 people (GRID's 0000)
DISTRACTOR_PID = 0


@dataclass(frozen=True)
class CropItem:
    """One person crop: absolute image path, global identity, camera, sequence, frame, split."""

    path: Path
    pid: int
    camid: int
    seq: str
    frame: int
    split: str


def _read_csv(path: Path, required: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    if not path.is_file():
        raise DataError(path, "no such file (is this a dataset written by make-triplets?)")
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(path, f"missing column(s) {', '.join(missing)}", line=1)
        return [(i + 2, row) for i, row in enumerate(reader)]


def load_index(dataset_dir: Path, split: str | None = None) -> list[CropItem]:
    """Crops listed in ``dataset_dir/index.csv`` (optionally one split), in file order."""
    dataset_dir = Path(dataset_dir)
    path = dataset_dir / "index.csv"
    items = []
    for line, row in _read_csv(path, INDEX_COLUMNS):
        try:
            item = CropItem(
                dataset_dir / row["path"], int(row["pid"]), int(row["camid"]),
                row["seq"], int(row["frame"]), row["split"],
            )
        except (TypeError, ValueError) as exc:
            raise DataError(path, f"bad value: {exc}", line=line) from None
        if split is None or item.split == split:
            items.append(item)
    return items


def load_pairs(dataset_dir: Path, name: str = "pairs_test.csv") -> list[tuple[Path, Path, int]]:
    """``(path_a, path_b, same)`` rows of a pairs file (paths made absolute)."""
    dataset_dir = Path(dataset_dir)
    path = dataset_dir / name
    out = []
    for line, row in _read_csv(path, ("a", "b", "same")):
        try:
            out.append((dataset_dir / row["a"], dataset_dir / row["b"], int(row["same"])))
        except (TypeError, ValueError) as exc:
            raise DataError(path, f"bad value: {exc}", line=line) from None
    return out


def load_triplets(dataset_dir: Path, name: str = "triplets_train.csv") -> list[tuple[Path, Path, Path]]:
    """``(anchor, positive, negative)`` absolute paths of a triplets file."""
    dataset_dir = Path(dataset_dir)
    rows = _read_csv(dataset_dir / name, ("anchor", "positive", "negative"))
    return [(dataset_dir / r["anchor"], dataset_dir / r["positive"], dataset_dir / r["negative"]) for _, r in rows]


def load_tracklets(dataset_dir: Path, split: str | None = None) -> list[dict]:
    """Tracklets of ``tracklets.json`` (paths made absolute), optionally one split."""
    path = Path(dataset_dir) / "tracklets.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(path, "no such file") from None
    except json.JSONDecodeError as exc:
        raise DataError(path, f"invalid JSON: {exc.msg}", line=exc.lineno) from None
    out = []
    for t in data:
        if split is None or t.get("split") == split:
            out.append({**t, "paths": [Path(dataset_dir) / p for p in t["paths"]]})
    return out


#: 0002_c1s1_000451_03.jpg -> pid 2, camera 1, sequence 1, frame 451; also DukeMTMC 0005_c2_f0046985.jpg
_MARKET_RE = re.compile(r"^(-?\d+)_c(\d+)(?:s(\d+))?_f?(\d+)")


def _hidden(path: Path) -> bool:
    """Whether a file or folder is hidden or an archiver's side file: ``.DS_Store``, macOS AppleDouble ``._x.jpg``
    files and ``__MACOSX/`` folders, any other dot-name."""
    return path.name.startswith(".") or path.name == "__MACOSX"


def image_files(folder: Path) -> list[Path]:
    """Image files (IMAGE_EXTS) directly in ``folder``, sorted by name; hidden files (``._x.jpg``) left out."""
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_EXTS and not _hidden(p))


def sub_folders(folder: Path) -> list[Path]:
    """The sub-folders of ``folder`` sorted by name, hidden ones (``.git/``, ``__MACOSX/``) left out."""
    return sorted(d for d in Path(folder).iterdir() if d.is_dir() and not _hidden(d))


#: Market-1501's sub-folders and the split each one's crops get
MARKET_SUBFOLDERS = {"bounding_box_train": "train", "query": "query", "bounding_box_test": "gallery"}
#: the gallery folder of a ``query/`` + ``gallery/`` root of Market-style names (a re-packed Market-1501 / DukeMTMC
#: test split): read where there is no ``bounding_box_test/``
PLAIN_GALLERY = "gallery"


def market_gallery_folder(folder: Path) -> Path:
    """The gallery folder of a Market-1501-style root: ``bounding_box_test/``, or ``gallery/`` when the root has
    ``query/`` and ``gallery/`` but no ``bounding_box_test/``."""
    folder = Path(folder)
    if not (folder / "bounding_box_test").is_dir() and (folder / "query").is_dir() and (folder / PLAIN_GALLERY).is_dir():
        return folder / PLAIN_GALLERY
    return folder / "bounding_box_test"


def _market_files(folder: Path, split: str, keep_distractors: bool = False) -> list[CropItem]:
    items = []
    for path in image_files(folder):
        m = _MARKET_RE.match(path.name)
        if m is None:
            raise DataError(path, "file name is not Market-1501 style <pid>_c<cam>s<seq>_<frame>_<n>.jpg")
        pid = int(m.group(1))
        if pid < 0 or (pid == 0 and not keep_distractors):  # -1 = junk, 0000 = distractor in Market-1501
            continue
        seq = f"c{m.group(2)}s{m.group(3) or 1}"
        items.append(CropItem(path, pid, int(m.group(2)), seq, int(m.group(4)), split))
    return items


def has_market_subfolders(folder: Path) -> bool:
    """Whether ``folder`` is a Market-1501 root (any of ``bounding_box_train``, ``query``, ``bounding_box_test``)."""
    return any((Path(folder) / sub).is_dir() for sub in MARKET_SUBFOLDERS)


def load_market_folder(folder: Path, split: str = "train") -> list[CropItem]:
    """Crops of a Market-1501-style folder; junk (-1) and distractor (0000) ids skipped.

    If ``folder`` has the Market-1501 sub-folders, they are loaded as splits
    ``bounding_box_train`` -> train, ``query`` -> query, ``bounding_box_test`` -> gallery (where the
    distractors, id 0000, are kept: the official protocol ranks them as gallery negatives; a ``query/`` +
    ``gallery/`` root without ``bounding_box_test/`` has its ``gallery/`` read as the gallery:
    :func:`market_gallery_folder`); otherwise the images directly in ``folder`` are loaded with ``split``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(folder, "no such folder")
    if has_market_subfolders(folder):
        items: list[CropItem] = []
        subs = {"bounding_box_train": "train", "query": "query", market_gallery_folder(folder).name: "gallery"}
        for sub, sp in subs.items():
            if (folder / sub).is_dir():
                items += _market_files(folder / sub, sp, keep_distractors=sp == "gallery")
        if not any(it.pid > 0 for it in items):
            raise DataError(folder, "no Market-1501-style images with a valid id in its sub-folders")
        return items
    items = _market_files(folder, split)
    if not items:
        raise DataError(folder, "no Market-1501-style images with a valid id")
    return items


#: 0012_07.jpg -> pid 12, image 7 (images 00-04 from camera A = 0, 05-09 from camera B = 1)
_CUHK03_RE = re.compile(r"^(\d+)_(\d+)$")


def _camera_pair_folder(folder: Path, split: str, pattern: re.Pattern, first_b: int, name: str, style: str
                        ) -> list[CropItem]:
    """Crops of a one-camera-pair folder whose file names match ``pattern`` (groups: pid, image number), in
    file-name order: camid 0 for image numbers below ``first_b`` (camera A), 1 otherwise (camera B); seq ``camA`` /
    ``camB``, frame = the image number. DataError names the first file that does not match (``style``: the
    expected name) or the folder when it holds no image (``name``: the set)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(folder, "no such folder")
    items = []
    for path in image_files(folder):
        m = pattern.match(path.stem)
        if m is None:
            raise DataError(path, f"file name is not {name} style {style}")
        image = int(m.group(2))
        cam = 0 if image < first_b else 1
        items.append(CropItem(path, int(m.group(1)), cam, "camA" if cam == 0 else "camB", image, split))
    if not items:
        raise DataError(folder, f"no {name}-style images {style}")
    return items


def load_cuhk03_folder(folder: Path, split: str = "train") -> list[CropItem]:
    """Crops of a CUHK03-style folder ``PPPP_II.jpg`` (one camera pair), in file-name order.

    camid is 0 for image numbers II < 5 (camera A) and 1 otherwise (camera B); seq is ``camA`` /
    ``camB`` and frame is II. Identity numbers are only unique within one folder (CUHK03 ``train/``
    and ``val/`` restart at 0000), so never merge two folders by number. DataError names the first
    file whose name does not fit, or the folder when it holds no image.
    """
    return _camera_pair_folder(folder, split, _CUHK03_RE, 5, "CUHK03", "<pid>_<image 00-09>.jpg")


#: CUHK01 ``campus/``: 0001001.png -> pid 1, image 1 (images 001-002 from camera A = 0, 003-004 from camera B = 1)
_CUHK01_RE = re.compile(r"^(\d{4})(\d{3})$")


def is_cuhk01_name(name: str) -> bool:
    """Whether an image file name is CUHK01 style ``<pid 4 digits><image 3 digits>.png``."""
    return _CUHK01_RE.match(Path(name).stem) is not None


def load_cuhk01_folder(folder: Path, split: str = "train") -> list[CropItem]:
    """Crops of a CUHK01-style folder (``campus/``: 971 people, two cameras, ``PPPPIII.png``), in file-name order:
    camid 0 for images 001-002 (camera A), 1 for 003 and above (camera B); seq ``camA`` / ``camB``, frame = III.
    DataError names the first file whose name does not fit, or the folder when it holds no image."""
    return _camera_pair_folder(folder, split, _CUHK01_RE, 3, "CUHK01", "<pid, 4 digits><image, 3 digits>.png")


#: the identity in a file name of a camera sub-folder: its first number (VIPeR 000_45.bmp -> 0,
#: PRID2011 person_0001.png -> 1, GRID 0001_1_25004_107_32_106_221.jpeg -> 1), after the camera folder's own name
#: is taken out of it (iLIDS-VID cam1_person001.png in cam1/ -> 1, not the camera's 1)
_FIRST_NUMBER_RE = re.compile(r"(\d+)")


def _name_numbers(name: str, camera: str) -> list[int]:
    """The numbers of ``name`` once ``camera`` (the camera folder's name, when it has a letter) is removed
    from it where it stands as a word of its own (``cam1_person001`` in ``cam1/`` -> [1])."""
    if re.search(r"[A-Za-z]", camera):  # a bare number ("1/") is not searched for: it could be part of the id
        name = re.sub(rf"(?<![A-Za-z0-9]){re.escape(camera)}(?![A-Za-z0-9])", "_", name, count=1, flags=re.I)
    return [int(x) for x in _FIRST_NUMBER_RE.findall(name)]


def _constant_first(numbers: list[list[int]]) -> int | None:
    """The first number shared by every name of one camera folder (two or more names, each with a further number
    after it), or None."""
    if len(numbers) < 2 or any(len(n) < 2 for n in numbers):
        return None
    firsts = {n[0] for n in numbers}
    return firsts.pop() if len(firsts) == 1 else None


def camera_number_first(numbers: dict[str, list[list[int]]]) -> set[str]:
    """Of ``numbers`` (camera folder name -> the numbers of each of its file or person-folder names), the camera
    folders whose names all start with the camera's own number spelled another way (``camera1/cam1_0007_0.jpg``,
    ``1/c1_0007_0.jpg``, ``cam1/c1_person001/``): the same first number in every name of the folder (two or more
    names, each with a further number), equal to the number in the folder's own name or, when every camera folder
    has such a constant, a different one in each. In those folders the identity is the next number. VIPeR's
    ``cam_a/000_45.bmp`` ... ``cam_a/631_0.bmp`` vary in their first number and keep it."""
    const = {cam: _constant_first(nums) for cam, nums in numbers.items()}
    values = list(const.values())
    distinct = None not in values and len(set(values)) == len(values) > 1
    out = set()
    for cam, k in const.items():
        own = _FIRST_NUMBER_RE.search(cam)
        if k is not None and (distinct or (own is not None and int(own.group(1)) == k)):
            out.add(cam)
    return out


def person_subfolders(folder: Path) -> list[Path]:
    """Sub-folders of ``folder`` that hold images directly and whose name has a number (one person's
    sequence in a camera: PRID2011 ``multi_shot/cam_a/person_0001/``, iLIDS-VID ``sequences/cam1/person001/``),
    sorted by name."""
    return [d for d in sub_folders(folder) if _FIRST_NUMBER_RE.search(d.name) and image_files(d)]


#: camera folders named for their role: a probe / query folder is the first camera (single shot's queries), a
#: gallery folder the last; other names keep name order between them
_ROLE_RANK = {"probe": 0, "probes": 0, "query": 0, "queries": 0, "gallery": 2, "galleries": 2}


def camera_subfolders(folder: Path) -> list[Path]:
    """Sub-folders of ``folder`` that are cameras: holding images directly (VIPeR ``cam_a/``, PRID2011
    ``single_shot/cam_a/``, GRID ``probe/``) or, without images of their own, one numbered sub-folder of
    images per person (PRID2011 ``multi_shot/cam_a/person_0001/``, iLIDS-VID ``sequences/cam1/person001/``).
    Sorted by name, except that a ``probe/`` or ``query/`` folder comes first and a ``gallery/`` folder last
    (GRID's ``probe/`` gives the queries although "gallery" sorts before it)."""
    cams = [d for d in sub_folders(folder) if image_files(d) or person_subfolders(d)]
    return sorted(cams, key=lambda d: (_ROLE_RANK.get(d.name.lower(), 1), d.name))


def camera_images(camera: Path) -> list[Path]:
    """A camera sub-folder's images: its own, or those of its person sub-folders (by folder, then name)."""
    return image_files(camera) or [p for d in person_subfolders(camera) for p in image_files(d)]


def has_sequences(folder: Path) -> bool:
    """Whether a per-camera folder holds per-person sequences (a camera folder without images of its own)."""
    return any(not image_files(c) for c in camera_subfolders(folder))


def _nested_layouts(folder: Path) -> list[str]:
    """Names of ``folder``'s sub-folders that are per-camera layouts themselves (PRID2011's ``single_shot/``
    and ``multi_shot/``, iLIDS-VID's ``images/`` and ``sequences/``): what to point at instead."""
    return [d.name + "/" for d in sub_folders(folder) if len(camera_subfolders(d)) >= 2]


#: more camera sub-folders than this is taken for a folder of per-person sub-folders pointed at by mistake
MAX_CAMERA_FOLDERS = 50

#: sub-folder names that are a data set's splits, never cameras
SPLIT_NAMES = ("train", "test", "val", "bbox_train", "bbox_test", "bounding_box_train", "bounding_box_test")


def _starts_with_folder_number(person: Path) -> bool:
    """Whether every image of ``person`` (a folder named by a number of 3+ digits), directly in it or in its
    sub-folders (DukeMTMC-VideoReID's tracklets), has a name that starts with that number and a non-digit
    (MSMT17 ``0042/0042_000_02_...jpg``, DukeMTMC-VideoReID ``0001/00001/0001_C1_F0016_X30000.jpg``)."""
    if not re.fullmatch(r"\d{3,}", person.name):
        return False
    files = image_files(person) or [f for d in sub_folders(person) for f in image_files(d)]
    return bool(files) and all(re.match(rf"{person.name}(?!\d)", f.name) for f in files)


def per_person_folders(folder: Path) -> list[Path]:
    """The sub-folders of ``folder`` that are one person each in a per-person layout (MSMT17-style ``test/<pid>/``,
    DukeMTMC-VideoReID ``train/<pid>/<tracklet>/``: :func:`_starts_with_folder_number`); empty unless two or more
    and at least half of its sub-folders are. Such folders hold no camera: their files name it."""
    subs = sub_folders(folder)
    people = [d for d in subs if _starts_with_folder_number(d)]
    return people if len(people) >= 2 and 2 * len(people) >= len(subs) else []


def check_not_per_person(folder: Path) -> None:
    """DataError (one line, saying what to point at) for a folder that holds per-person sub-folders
    (:func:`per_person_folders`) or a data set's split folders (``train/`` ``test/``) where one sub-folder per
    camera is expected."""
    people = per_person_folders(folder)
    if people:
        raise DataError(folder, f"holds {len(people)} per-person sub-folders ({people[0].name}/, {people[1].name}/, ...; "
                                "the files in each start with its number: MSMT17 / DukeMTMC-VideoReID style), not one "
                                "sub-folder per camera: that layout is not read (their file names hold the camera); "
                                "point at a folder with one sub-folder per camera, a Market-1501-style folder or a "
                                "MARS bbox_test/")
    splits = [d.name + "/" for d in sub_folders(folder) if d.name.lower() in SPLIT_NAMES]
    if len(splits) >= 2:
        raise DataError(folder, f"its sub-folders {', '.join(splits)} are a data set's splits, not cameras: point at "
                                "one of them")


def load_camera_folders(folder: Path, split: str = "train") -> list[CropItem]:
    """Crops of a folder with one sub-folder per camera, the layout of the classic two-camera sets as
    distributed. A camera sub-folder holds either images (VIPeR ``cam_a/`` ``cam_b/``, PRID2011
    ``single_shot/cam_a`` ``cam_b``, GRID ``probe/`` ``gallery/``) or one numbered sub-folder per person with
    that person's sequence of frames (PRID2011 ``multi_shot/cam_a/person_0001/``, iLIDS-VID
    ``sequences/cam1/person001/``). camid = the camera sub-folder's index in :func:`camera_subfolders` order
    (name order, a ``probe/`` or ``query/`` first, a ``gallery/`` last). For images in the camera folder: the
    identity is the first number of the file name once the camera folder's name is taken out of it, seq = the
    camera's name, frame = the image's index. For person sub-folders: the identity is the first number of the
    person folder's name (the camera's name taken out too), seq = ``<camera>/<person>`` (one sequence), frame =
    the image's index in it. Where every name of a camera folder starts with the camera's own number spelled
    another way (``camera1/cam1_0007_0.jpg``, ``1/c1_0007_0.jpg``: :func:`camera_number_first`), the identity is
    the next number. The same number in two cameras is the same person; identities are renumbered 1..N in order
    of that number (a number 0 seen by both cameras, VIPeR's first person, is a person here), except that a
    number 0 seen by one camera only is :data:`DISTRACTOR_PID` (GRID's ``gallery/0000_*.jpeg``: unrelated
    people, gallery negatives that are never queries). DataError
    names a file without a number, or the folder when fewer than two sub-folders are cameras (naming the
    sub-folders that are camera layouts of their own, such as PRID2011's ``single_shot/``)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(folder, "no such folder")
    check_not_per_person(folder)
    cams = camera_subfolders(folder)
    if len(cams) < 2:
        for sub in sub_folders(folder):  # a per-person layout one level down (msmt/test/<pid>/) says so itself
            check_not_per_person(sub)
        nested = _nested_layouts(folder)
        if len(nested) > 1:
            raise DataError(folder, f"holds more than one per-camera layout ({', '.join(nested)}): "
                                    "point at one of them")
        if nested:
            raise DataError(folder, f"holds a per-camera layout in {nested[0]}: point at it")
        raise DataError(folder, f"needs one sub-folder of images per camera, at least two (found {len(cams)})")
    if len(cams) > MAX_CAMERA_FOLDERS:
        raise DataError(folder, f"has {len(cams)} camera sub-folders ({cams[0].name}/, {cams[1].name}/, ...): if each "
                                "is one person, point at the folder above it, which holds one sub-folder per camera")
    entries: dict[str, list[tuple[Path, list[int]]]] = {}  # camera -> (file or person folder, its numbers)
    for cam in cams:
        files = image_files(cam)
        entries[cam.name] = [(e, _name_numbers(e.stem if files else e.name, cam.name))
                             for e in (files or person_subfolders(cam))]
        for path, nums in entries[cam.name]:
            if not nums:
                raise DataError(path, "file name has no identity number (the first number in the name is the person)")
    second = camera_number_first({cam: [n for _, n in e] for cam, e in entries.items()})
    rows = []
    for camid, cam in enumerate(cams):
        for k, (entry, nums) in enumerate(entries[cam.name]):
            n = nums[1] if cam.name in second else nums[0]
            if entry.is_dir():  # a person's sequence: frame = the image's index in it
                rows += [(path, n, camid, f"{cam.name}/{entry.name}", frame)
                         for frame, path in enumerate(image_files(entry))]
            else:  # frame = the image's index in the camera folder
                rows.append((entry, n, camid, cam.name, k))
    cams_of: dict[int, set[int]] = {}
    for _, n, camid, _, _ in rows:
        cams_of.setdefault(n, set()).add(camid)
    distractor = 0 in cams_of and len(cams_of[0]) == 1  # GRID's 0000 crops: unrelated people in one camera
    people = sorted(n for n in cams_of if not (distractor and n == 0))
    pid = {n: k + 1 for k, n in enumerate(people)}
    if distractor:
        pid[0] = DISTRACTOR_PID
    return [CropItem(path, pid[n], camid, seq, frame, split) for path, n, camid, seq, frame in rows]


#: MARS / its derivatives: 0001C1T0001F001.jpg -> pid 1, camera 1, tracklet 1, frame 1 (in a sub-folder per person)
_MARS_RE = re.compile(r"^(.+?)C(\d+)T(\d+)F(\d+)$")


def is_mars_name(name: str) -> bool:
    """Whether an image file name is MARS style ``<pid>C<cam>T<tracklet>F<frame>.jpg``."""
    return _MARS_RE.match(Path(name).stem) is not None


def load_mars_folder(folder: Path, split: str = "train") -> list[CropItem]:
    """Crops of a MARS-style folder (``bbox_train/`` or ``bbox_test/``: one sub-folder per person holding
    ``<pid>C<cam>T<tracklet>F<frame>.jpg``), junk (``00-1``) and distractor (``0000``) people skipped as in
    Market-1501. camid = the camera number, seq = ``c<cam>t<tracklet>`` (one tracklet), frame = the frame number.
    DataError names the first file whose name does not fit, or the folder when it holds no person."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(folder, "no such folder")
    items = []
    for person in sorted(d for d in folder.iterdir() if d.is_dir()):
        for path in image_files(person):
            m = _MARS_RE.match(path.stem)
            if m is None:
                raise DataError(path, "file name is not MARS style <pid>C<cam>T<tracklet>F<frame>.jpg")
            if not m.group(1).isdigit() or int(m.group(1)) <= 0:
                continue
            cam = int(m.group(2))
            items.append(CropItem(path, int(m.group(1)), cam, f"c{cam}t{m.group(3)}", int(m.group(4)), split))
    if not items:
        raise DataError(folder, "no MARS-style person sub-folders <pid>/<pid>C<cam>T<tracklet>F<frame>.jpg")
    return items


#: reader by ``format`` name (``index`` = a make-triplets dataset folder)
FOLDER_FORMATS = ("index", "market", "cuhk03", "cuhk01", "cameras", "mars")


def load_reid_folder(folder: Path, fmt: str, split: str | None = None) -> list[CropItem]:
    """Items of one dataset folder in format ``fmt`` (see FOLDER_FORMATS); ``split`` filters
    index datasets and labels the items of image folders (None = "train")."""
    folder = Path(folder)
    if fmt == "index":
        if not folder.is_dir():
            raise DataError(folder, "no such dataset folder")
        return load_index(folder, split=split)
    if fmt == "market":
        items = load_market_folder(folder, split=split or "train")
        return [it for it in items if split is None or it.split == split]
    if fmt == "cuhk03":
        return load_cuhk03_folder(folder, split=split or "train")
    if fmt == "cuhk01":
        return load_cuhk01_folder(folder, split=split or "train")
    if fmt == "cameras":
        return load_camera_folders(folder, split=split or "train")
    if fmt == "mars":
        return load_mars_folder(folder, split=split or "train")
    raise DataError(folder, f"unknown dataset format {fmt!r}; valid: {', '.join(FOLDER_FORMATS)}")


def write_csv(path: Path, header: tuple[str, ...], rows: list[tuple]) -> None:
    """Write rows under a header (creating the parent folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
