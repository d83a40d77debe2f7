import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ram_core.data import (
    COCO_CLASSES,
    VOC_CLASSES,
    COCODataset,
    FolderDataset,
    VOCDataset,
    build_dataset,
    find_coco_split,
    make_synthetic_voc,
    read_voc_annotations,
)
from ram_core.errors import DatasetError

SHAPES = ["circle", "square", "triangle", "cross"]


def write_photo(path: Path, colour=(120, 60, 30), size=(40, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


def voc_xml(objects, size=(40, 30)) -> str:
    """objects: (name, difficult, (xmin, ymin, xmax, ymax)) in VOC's 1-based inclusive pixels."""
    parts = [f"<annotation><size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>"]
    for name, difficult, (x0, y0, x1, y1) in objects:
        parts.append(f"<object><name>{name}</name><difficult>{int(difficult)}</difficult><bndbox>"
                     f"<xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>")
    return "".join(parts) + "</annotation>"


def make_voc_tree(tmp_path: Path, annotations: dict[str, list], split="val", photos=None) -> Path:
    """A VOCdevkit/VOC2007 tree under tmp_path; returns tmp_path."""
    voc = tmp_path / "VOCdevkit" / "VOC2007"
    (voc / "Annotations").mkdir(parents=True)
    (voc / "ImageSets" / "Main").mkdir(parents=True)
    for image_id, objects in annotations.items():
        (voc / "Annotations" / f"{image_id}.xml").write_text(voc_xml(objects))
        if photos is None or image_id in photos:
            write_photo(voc / "JPEGImages" / f"{image_id}.jpg")
    (voc / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{i}\n" for i in annotations))
    return tmp_path


DIFFICULT_TREE = {
    "000001": [("dog", False, (1, 1, 10, 10)), ("cat", True, (5, 5, 20, 20))],  # cat: difficult only
    "000002": [("cat", True, (1, 1, 5, 5)), ("cat", False, (10, 10, 30, 25))],  # cat: positive
    "000003": [("person", False, (2, 3, 40, 30))],
}


# --- class lists ---------------------------------------------------------------------------------

def test_class_lists_have_the_standard_order():
    assert len(VOC_CLASSES) == 20 and VOC_CLASSES[0] == "aeroplane" and VOC_CLASSES[-1] == "tvmonitor"
    assert len(COCO_CLASSES) == 80 and COCO_CLASSES[0] == "person" and COCO_CLASSES[-1] == "toothbrush"


# --- synthetic scenes ------------------------------------------------------------------------------

def test_synthetic_scenes_read_back_with_targets_and_boxes_from_the_xml(tmp_path):
    root, classes = make_synthetic_voc(tmp_path / "syn", 16, image_size=96, seed=3)
    assert classes == SHAPES
    ds = VOCDataset(root, "trainval", class_names=classes)
    train, val, test = (set((root / "ImageSets/Main" / f"{s}.txt").read_text().split()) for s in ("train", "val", "test"))
    assert not (train & val or train & test or val & test) and len(train | val | test) == 16
    assert set(ds.ids) == train | val
    for i, image_id in enumerate(ds.ids):
        objects = ET.parse(root / "Annotations" / f"{image_id}.xml").getroot().findall("object")
        names = {o.findtext("name") for o in objects}
        assert ds.labels(i) == [c for c in classes if c in names]
        assert 1 <= len(ds.boxes[i]) <= 3 and ds.image_sizes[i] == (96, 96)
        first = objects[0].find("bndbox")
        k, x0, y0, x1, y1, difficult = ds.boxes[i][0]
        assert classes[k] == objects[0].findtext("name") and not difficult
        assert (x0, y0, x1, y1) == (int(first.findtext("xmin")) - 1, int(first.findtext("ymin")) - 1,
                                    int(first.findtext("xmax")), int(first.findtext("ymax")))
        side = x1 - x0
        assert 0.1 * 96 <= side <= 0.45 * 96
    assert (ds.masks == 1).all()
    image, target, mask, index = ds[0]
    assert image.shape == (3, 224, 224) and image.dtype == torch.float32
    assert torch.equal(target, torch.from_numpy(ds.targets[0])) and mask.shape == (4,) and index == 0


def test_synthetic_generator_is_deterministic_given_the_seed(tmp_path):
    a, _ = make_synthetic_voc(tmp_path / "a", 5, image_size=64, seed=11)
    b, _ = make_synthetic_voc(tmp_path / "b", 5, image_size=64, seed=11)
    c, _ = make_synthetic_voc(tmp_path / "c", 5, image_size=64, seed=12)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    assert (a / "JPEGImages/000000.jpg").read_bytes() != (c / "JPEGImages/000000.jpg").read_bytes()


def test_synthetic_voc_without_class_names_is_an_unknown_class_error(tmp_path):
    root, _ = make_synthetic_voc(tmp_path / "syn", 4, image_size=64)
    with pytest.raises(DatasetError, match=r"\.xml: unknown class name"):
        VOCDataset(root, "train")


# --- VOC -----------------------------------------------------------------------------------------

def test_voc_difficult_only_class_is_masked_under_ignore(tmp_path):
    ds = VOCDataset(make_voc_tree(tmp_path, DIFFICULT_TREE), "val")
    cat, dog, person = (VOC_CLASSES.index(c) for c in ("cat", "dog", "person"))
    assert ds.name == "voc2007/val" and ds.ids == ["000001", "000002", "000003"]
    assert ds.targets[0, dog] == 1 and ds.targets[0, cat] == 0 and ds.masks[0, cat] == 0
    assert ds.targets[1, cat] == 1 and ds.masks[1, cat] == 1  # a non-difficult cat makes it positive
    assert ds.masks.sum() == 3 * 20 - 1
    assert ds.image_sizes[0] == (40, 30)
    assert ds.boxes[0] == [(dog, 0.0, 0.0, 10.0, 10.0, False), (cat, 4.0, 4.0, 20.0, 20.0, True)]


@pytest.mark.parametrize("mode, target", [("positive", 1), ("negative", 0)])
def test_voc_difficult_option_sets_training_target_but_not_eval_mask(tmp_path, mode, target):
    ds = VOCDataset(make_voc_tree(tmp_path, DIFFICULT_TREE), "val", difficult=mode)
    cat = VOC_CLASSES.index("cat")
    assert ds.targets[0, cat] == target and ds.masks[0, cat] == 1
    assert ds.eval_masks[0, cat] == 0  # evaluation keeps the devkit's rule


@pytest.mark.parametrize("where", ["", "VOCdevkit", "VOCdevkit/VOC2007"])
def test_voc_root_may_be_any_level_of_the_devkit(tmp_path, where):
    make_voc_tree(tmp_path, DIFFICULT_TREE)
    assert len(VOCDataset(tmp_path / where, "val")) == 3


def test_read_voc_annotations_needs_no_photos(tmp_path):
    make_voc_tree(tmp_path, DIFFICULT_TREE, photos=set())
    ids_file = tmp_path / "all.txt"
    ids_file.write_text("000001\n000003\n")
    annotations = read_voc_annotations(tmp_path, ids_file)
    assert list(annotations) == ["000001", "000003"]
    first = annotations["000001"]
    assert (first.width, first.height) == (40, 30)
    assert first.labels == ["dog"] and first.difficult_only_labels == ["cat"]
    assert first.objects[1].box == (4.0, 4.0, 20.0, 20.0) and first.objects[1].difficult


def test_subset_keeps_the_selected_items(tmp_path):
    ds = VOCDataset(make_voc_tree(tmp_path, DIFFICULT_TREE), "val")
    sub = ds.subset([2, 0])
    assert sub.ids == ["000003", "000001"] and np.array_equal(sub.targets, ds.targets[[2, 0]])
    assert np.array_equal(sub.masks, ds.masks[[2, 0]]) and sub.boxes[1] == ds.boxes[0]
    assert sub[0][3] == 0 and sub.transform is ds.transform


def test_custom_transform_is_applied(tmp_path):
    ds = VOCDataset(make_voc_tree(tmp_path, DIFFICULT_TREE), "val", transform=lambda img: torch.zeros(1, *img.size))
    assert ds[0][0].shape == (1, 40, 30)
    assert ds.image(0).size == (40, 30)


# --- malformed VOC input ---------------------------------------------------------------------------

def test_voc_missing_photo_raises_or_is_skipped(tmp_path):
    make_voc_tree(tmp_path, DIFFICULT_TREE, photos={"000001", "000003"})
    with pytest.raises(DatasetError, match=r"000002\.jpg: photo not found"):
        VOCDataset(tmp_path, "val")
    with pytest.warns(UserWarning, match="skipped 1 bad item"):
        ds = VOCDataset(tmp_path, "val", skip_bad=True)
    assert ds.ids == ["000001", "000003"] and len(ds.skipped) == 1 and "000002.jpg" in ds.skipped[0]


def test_voc_broken_xml_raises_or_is_skipped(tmp_path):
    make_voc_tree(tmp_path, DIFFICULT_TREE)
    (tmp_path / "VOCdevkit/VOC2007/Annotations/000003.xml").write_text("<annotation><object>")
    with pytest.raises(DatasetError, match=r"000003\.xml: cannot parse"):
        VOCDataset(tmp_path, "val")
    with pytest.warns(UserWarning):
        ds = VOCDataset(tmp_path, "val", skip_bad=True)
    assert len(ds) == 2 and "000003.xml" in ds.skipped[0]


def test_voc_unknown_class_raises_or_is_skipped(tmp_path):
    make_voc_tree(tmp_path, {**DIFFICULT_TREE, "000004": [("unicorn", False, (1, 1, 5, 5))]})
    with pytest.raises(DatasetError, match=r"000004\.xml: unknown class name\(s\) 'unicorn'"):
        VOCDataset(tmp_path, "val")
    with pytest.warns(UserWarning):
        assert len(VOCDataset(tmp_path, "val", skip_bad=True)) == 3


def test_voc_empty_and_missing_split_files_raise(tmp_path):
    make_voc_tree(tmp_path, DIFFICULT_TREE)
    (tmp_path / "VOCdevkit/VOC2007/ImageSets/Main/train.txt").write_text("\n")
    with pytest.raises(DatasetError, match=r"train\.txt: the split is empty"):
        VOCDataset(tmp_path, "train", skip_bad=True)
    with pytest.raises(DatasetError, match=r"test\.txt: split file not found \(splits there: train, val\)"):
        VOCDataset(tmp_path, "test")


def test_voc_all_items_bad_is_an_error_even_when_skipping(tmp_path):
    make_voc_tree(tmp_path, DIFFICULT_TREE, photos=set())
    with pytest.raises(DatasetError, match="no usable images"):
        VOCDataset(tmp_path, "val", skip_bad=True)


def test_unreadable_photo_raises_dataset_error_naming_the_file(tmp_path):
    make_voc_tree(tmp_path, DIFFICULT_TREE)
    (tmp_path / "VOCdevkit/VOC2007/JPEGImages/000002.jpg").write_bytes(b"not a jpeg")
    ds = VOCDataset(tmp_path, "val")  # existence is checked up front, decoding only on access
    with pytest.raises(DatasetError, match=r"000002\.jpg: not an image file"):
        ds[1]


# --- COCO ----------------------------------------------------------------------------------------

def make_coco(tmp_path: Path, split="val2017", images=("a.jpg", "b.jpg", "c.jpg")) -> tuple[Path, Path]:
    images_dir = tmp_path / split
    for name in images:
        write_photo(images_dir / name)
    data = {
        # Out of order and with a gap, as in the real file's ids (1..90 with holes).
        "categories": [{"id": 90, "name": "toothbrush"}, {"id": 1, "name": "person"}, {"id": 3, "name": "car"}],
        "images": [{"id": 10, "file_name": "a.jpg", "width": 40, "height": 30},
                   {"id": 11, "file_name": "b.jpg", "width": 40, "height": 30},
                   {"id": 12, "file_name": "c.jpg", "width": 40, "height": 30}],
        "annotations": [{"id": 1, "image_id": 10, "category_id": 3, "bbox": [1, 2, 10, 5], "iscrowd": 0},
                        {"id": 2, "image_id": 10, "category_id": 90, "bbox": [0, 0, 4, 4], "iscrowd": 1},
                        {"id": 3, "image_id": 11, "category_id": 1, "bbox": [5, 5, 3, 3], "iscrowd": 0}],
    }
    (tmp_path / "annotations").mkdir(exist_ok=True)
    path = tmp_path / "annotations" / f"instances_{split}.json"
    path.write_text(json.dumps(data))
    return images_dir, path


def test_coco_annotations_become_multi_hot_in_category_id_order(tmp_path):
    ds = COCODataset(*make_coco(tmp_path))
    assert ds.class_names == ["person", "car", "toothbrush"] and ds.category_ids == [1, 3, 90]
    assert ds.name == "coco/val2017" and ds.ids == ["10", "11", "12"]
    np.testing.assert_array_equal(ds.targets, [[0, 1, 1], [1, 0, 0], [0, 0, 0]])  # c.jpg: kept, all negative
    assert ds.boxes[0] == [(1, 1.0, 2.0, 11.0, 7.0, False), (2, 0.0, 0.0, 4.0, 4.0, True)]
    assert ds.image_sizes[2] == (40, 30)


@pytest.mark.parametrize("split", ["val2014", "val2017"])
def test_find_coco_split_supports_2014_and_2017_layouts(tmp_path, split):
    images_dir, annotations = make_coco(tmp_path, split)
    assert find_coco_split(tmp_path, "val") == (images_dir, annotations)
    assert len(build_dataset("coco", tmp_path, split)) == 3
    with pytest.raises(DatasetError, match="no COCO split 'train'"):
        find_coco_split(tmp_path, "train")


def test_coco_broken_json_and_missing_photo(tmp_path):
    images_dir, path = make_coco(tmp_path, images=("a.jpg", "b.jpg"))
    with pytest.raises(DatasetError, match=r"c\.jpg: photo not found"):
        COCODataset(images_dir, path)
    with pytest.warns(UserWarning, match="skipped 1"):
        ds = COCODataset(images_dir, path, skip_bad=True)
    assert ds.ids == ["10", "11"] and "c.jpg" in ds.skipped[0]
    path.write_text('{"images": [')
    with pytest.raises(DatasetError, match=r"instances_val2017\.json: cannot parse the JSON"):
        COCODataset(images_dir, path, skip_bad=True)


def test_coco_unknown_category_raises_or_is_skipped(tmp_path):
    images_dir, path = make_coco(tmp_path)
    data = json.loads(path.read_text())
    data["annotations"].append({"id": 9, "image_id": 12, "category_id": 5, "bbox": [0, 0, 1, 1]})
    path.write_text(json.dumps(data))
    with pytest.raises(DatasetError, match=r"instances_val2017\.json: annotation 9 has unknown category id 5"):
        COCODataset(images_dir, path)
    with pytest.warns(UserWarning):
        ds = COCODataset(images_dir, path, skip_bad=True)
    assert ds.targets[2].sum() == 0 and len(ds.skipped) == 1


# --- folder --------------------------------------------------------------------------------------

def make_folder(tmp_path: Path, names=("x.jpg", "sub/y.png", "z.jpg")) -> Path:
    for name in names:
        write_photo(tmp_path / name)
    return tmp_path


def test_folder_csv_with_a_labels_column(tmp_path):
    make_folder(tmp_path)
    (tmp_path / "labels.csv").write_text("image,labels\nx.jpg,cat;dog\nsub/y.png,dog bird\nz.jpg,\n")
    ds = FolderDataset(tmp_path, "labels.csv")
    assert ds.class_names == ["bird", "cat", "dog"] and ds.ids == ["x.jpg", "sub/y.png", "z.jpg"]
    np.testing.assert_array_equal(ds.targets, [[0, 1, 1], [1, 0, 1], [0, 0, 0]])
    assert ds[1][0].shape == (3, 224, 224)


def test_folder_csv_with_one_column_per_class(tmp_path):
    make_folder(tmp_path)
    (tmp_path / "labels.csv").write_text("image,traffic light,car\nx.jpg,1,0\nsub/y.png,0,0\nz.jpg,1,1\n")
    ds = FolderDataset(tmp_path, "labels.csv")
    assert ds.class_names == ["traffic light", "car"]
    np.testing.assert_array_equal(ds.targets, [[1, 0], [0, 0], [1, 1]])


@pytest.mark.parametrize("content", [
    {"x.jpg": ["cat"], "sub/y.png": ["cat", "dog"], "z.jpg": []},
    [{"image": "x.jpg", "labels": ["cat"]}, {"image": "sub/y.png", "labels": ["dog", "cat"]},
     {"image": "z.jpg", "labels": []}],
])
def test_folder_json_mapping_or_records(tmp_path, content):
    make_folder(tmp_path)
    (tmp_path / "labels.json").write_text(json.dumps(content))
    ds = FolderDataset(tmp_path, "labels.json", class_names=["dog", "cat", "bird"])
    assert ds.class_names == ["dog", "cat", "bird"]
    np.testing.assert_array_equal(ds.targets, [[0, 1, 0], [1, 1, 0], [0, 0, 0]])
    assert len(build_dataset("folder", tmp_path, None)) == 3  # labels.json found by default


def test_folder_unknown_class_missing_photo_and_broken_json(tmp_path):
    make_folder(tmp_path)
    (tmp_path / "labels.csv").write_text("image,labels\nx.jpg,cat\nsub/y.png,zebra\nmissing.jpg,cat\n")
    with pytest.raises(DatasetError, match=r"labels\.csv, line 3: unknown class name\(s\) 'zebra'"):
        FolderDataset(tmp_path, "labels.csv", class_names=["cat"])
    with pytest.raises(DatasetError, match=r"missing\.jpg: photo not found \(for .*labels\.csv, line 4\)"):
        FolderDataset(tmp_path, "labels.csv")
    with pytest.warns(UserWarning, match="skipped 2"):
        ds = FolderDataset(tmp_path, "labels.csv", class_names=["cat"], skip_bad=True)
    assert ds.ids == ["x.jpg"] and len(ds.skipped) == 2
    (tmp_path / "labels.json").write_text("{'x.jpg': ['cat']}")
    with pytest.raises(DatasetError, match=r"labels\.json: cannot parse the JSON"):
        FolderDataset(tmp_path, "labels.json")


def test_folder_csv_without_header_or_rows_is_an_error(tmp_path):
    make_folder(tmp_path)
    (tmp_path / "bad.csv").write_text("x.jpg,cat\n")
    with pytest.raises(DatasetError, match=r"bad\.csv, line 1: the first row must be a header") as err:
        FolderDataset(tmp_path, "bad.csv")
    assert "x.jpg" not in str(err.value)  # the line itself is not quoted: it may be any file's first line
    (tmp_path / "empty.csv").write_text("image,labels\n")
    with pytest.raises(DatasetError, match=r"empty\.csv"):
        FolderDataset(tmp_path, "empty.csv")


# --- build_dataset ---------------------------------------------------------------------------------

def test_build_dataset_dispatches_by_kind(tmp_path):
    make_voc_tree(tmp_path / "voc", DIFFICULT_TREE)
    assert isinstance(build_dataset("voc", tmp_path / "voc", "val"), VOCDataset)
    synthetic = build_dataset("synthetic", tmp_path / "syn", "val", num_images=8, image_size=64)
    assert synthetic.class_names == SHAPES and synthetic.name == "synthetic/val" and len(synthetic) == 2
    with pytest.raises(ValueError, match="unknown dataset kind"):
        build_dataset("imagenet", tmp_path, "val")
