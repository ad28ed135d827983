"""Free space below a floor, asked of the disk that holds a path."""

import types

from wsrec.store.disk import Shortfall, below, format_size


def usage(free, total=100 << 30):
    asked = []

    def disk_usage(path):
        asked.append(path)
        return types.SimpleNamespace(free=free, total=total)
    return disk_usage, asked


def test_below_the_floor_says_by_how_much(tmp_path):
    disk_usage, asked = usage(free=500)
    assert below(tmp_path, 1000, disk_usage=disk_usage) == Shortfall(500, 1000, 100 << 30,
                                                                      tmp_path)
    assert below(tmp_path, 500, disk_usage=disk_usage) is None       # exactly at it: fine
    assert asked == [tmp_path, tmp_path]


def test_a_folder_not_made_yet_is_on_its_parents_disk(tmp_path):
    disk_usage, asked = usage(free=10)
    low = below(tmp_path / "data" / "venue=a", 20, disk_usage=disk_usage)
    assert asked == [tmp_path] and low.path == tmp_path


def test_the_floor_may_depend_on_the_disks_size(tmp_path):
    disk_usage, _ = usage(free=4 << 30, total=100 << 30)
    assert below(tmp_path, lambda total: total // 20, disk_usage=disk_usage).need == 5 << 30
    assert below(tmp_path, lambda total: total // 50, disk_usage=disk_usage) is None


def test_a_disk_that_cannot_be_asked_is_no_shortfall(tmp_path):
    def broken(path):
        raise PermissionError(13, "Permission denied")
    assert below(tmp_path, 1 << 40, disk_usage=broken) is None


def test_sizes():
    assert [format_size(n) for n in (0, 1023, 1024, 812 << 20, 5 * 10**9, 3 << 40)] == \
        ["0 B", "1023 B", "1.0 KiB", "812.0 MiB", "4.7 GiB", "3.0 TiB"]
