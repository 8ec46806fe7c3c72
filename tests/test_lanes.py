"""The suite's own scheduler (lanes.py): whole modules per worker, heaviest first."""

from __future__ import annotations

from lanes import lanes


def _modules(collection: list[str], lane: list[int]) -> list[str]:
    return list(dict.fromkeys(collection[i].split("::")[0] for i in lane))


def test_each_module_goes_whole_to_the_least_loaded_worker_heaviest_first() -> None:
    collection = [f"tests/test_{m}.py::t{i}" for m, n in
                  (("a", 3), ("b", 1), ("c", 2), ("d", 4)) for i in range(n)]
    seconds = {"tests/test_a.py": 10.0, "tests/test_b.py": 30.0, "tests/test_c.py": 5.0,
               "tests/test_d.py": 8.0}
    first, second = lanes(collection, 2, seconds)
    assert _modules(collection, first) == ["tests/test_b.py"]
    assert _modules(collection, second) == ["tests/test_a.py", "tests/test_d.py",
                                            "tests/test_c.py"]
    assert sorted(first + second) == list(range(len(collection))), "every test, once"


def test_a_module_without_recorded_seconds_weighs_its_tests_times_the_median_test() -> None:
    collection = [*(f"tests/test_new.py::t{i}" for i in range(10)),
                  "tests/test_one.py::t", *(f"tests/test_two.py::t{i}" for i in range(2))]
    seconds = {"tests/test_one.py": 1.0, "tests/test_two.py": 4.0}  # 1 s and 2 s a test
    first, second = lanes(collection, 2, seconds)
    assert _modules(collection, first) == ["tests/test_new.py"], "10 tests of 1.5 s: heaviest"
    assert _modules(collection, second) == ["tests/test_two.py", "tests/test_one.py"]


def test_more_workers_than_modules_leaves_some_without_a_first_share() -> None:
    assert lanes(["tests/test_a.py::t"], 3, {}) == [[0], [], []]
