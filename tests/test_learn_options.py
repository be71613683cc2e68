"""The option-gradient experiment on any map: named maps and map files, doorways and hallway
options on any map, covering options, goal batches, several seeds and their aggregate."""

import dataclasses
import json
import os
from collections import deque

import jax
import numpy as np
import pytest
import scipy.stats

import optiongrad as og
from optiongrad.cli import main
from optiongrad.experiments import learn_options as lo
from optiongrad.experiments import seeds
from optiongrad.experiments.learn_options import LearnOptionsConfig, Setup, train_options

TWO_ROOMS = """\
wwwwwwwwwwwww
w     w     w
w     w     w
w           w
w     w     w
wwwwwwwwwwwww
"""


def _bfs(grid, target, allowed):
    dist = np.full(grid.num_states, -1)
    dist[target] = 0
    queue = deque([target])
    while queue:
        x = queue.popleft()
        for y in grid.successors[x]:
            if allowed[y] and dist[y] < 0:
                dist[y] = dist[x] + 1
                queue.append(y)
    return dist


def test_named_maps_and_map_files(tmp_path):
    sizes = {"four-rooms": 104, "hundred-rooms": 10180, "nine-rooms": 453,
             "twenty-five-rooms": 1265}
    assert og.gridworld.map_names() == tuple(sizes)
    for name, cells in sizes.items():
        assert og.gridworld.load_map(name).num_states == cells
    np.testing.assert_array_equal(og.gridworld.load_map("four-rooms").cells,
                                  og.gridworld.four_rooms().cells)
    path = tmp_path / "two.txt"
    path.write_bytes(TWO_ROOMS.replace("\n", "\r\n").encode())       # Windows line ends
    assert og.gridworld.load_map(str(path)).num_states == 41
    for bad in ("no-such-map", "", 3, str(tmp_path)):
        with pytest.raises(ValueError, match="map"):
            og.gridworld.load_map(bad)


@pytest.mark.parametrize("name,rooms,doorways", [("four-rooms", 4, 4), ("nine-rooms", 9, 12),
                                                  ("twenty-five-rooms", 25, 40),
                                                  ("hundred-rooms", 100, 180)])
def test_doorways_join_rooms_on_every_shipped_map(name, rooms, doorways):
    grid = og.gridworld.load_map(name)
    found_rooms, hallways = og.gridworld.rooms_and_hallways(grid)
    assert len(found_rooms) == rooms and len(hallways) == doorways
    label = np.full(grid.num_states, -1)
    for i, room in enumerate(found_rooms):
        label[room] = i
    for h in hallways:  # each doorway joins exactly two rooms, and removing it separates them
        sides = {label[y] for y in grid.successors[h] if label[y] >= 0}
        assert len(sides) == 2


def test_hallway_options_on_nine_rooms_reach_their_doorway_by_shortest_paths():
    grid = og.gridworld.load_map("nine-rooms")
    env = og.gridworld.navigation_mdp(grid, 0.9)
    options = og.gridworld.hallway_options(grid)
    assert options.num_options == 24                 # one per room and doorway of the room
    _, transitions = og.option_models(env, options)
    initiation = np.asarray(options.initiation_mask())
    transitions = np.asarray(transitions)
    hallways = og.gridworld.rooms_and_hallways(grid)[1]
    for k in range(options.num_options):
        target = int(np.argmax(transitions[k, np.flatnonzero(initiation[k])[0]]))
        assert target in hallways and not initiation[k, target]
        dist = _bfs(grid, target, initiation[k] | (np.arange(grid.num_states) == target))
        for s in np.flatnonzero(initiation[k]):
            # the option ends at its doorway after the shortest-path number of moves
            assert transitions[k, s, target] == pytest.approx(0.9 ** dist[s], rel=1e-10)


def test_covering_subgoals_are_the_ends_of_the_fiedler_vector():
    line = og.gridworld.GridWorld.from_ascii("w" * 12 + "\nw" + " " * 10 + "w\n" + "w" * 12)
    env = og.gridworld.navigation_mdp(line, 0.9)
    first = og.discovery.covering_subgoals(env, 2)
    assert sorted(first.tolist()) == [0, 9]                  # a path's Fiedler vector is monotone
    # every round raises (never lowers) the algebraic connectivity λ₂ of the augmented graph
    grid = og.gridworld.four_rooms()
    env = og.gridworld.navigation_mdp(grid, 0.9)
    subgoals = og.discovery.covering_subgoals(env, 6)
    graph = og.discovery.state_graph(env).toarray()
    lam = []
    for i in range(0, 7, 2):
        lam.append(np.linalg.eigvalsh(np.diag(graph.sum(1)) - graph)[1])
        if i < 6:
            a, b = subgoals[i], subgoals[i + 1]
            graph[a, b] = graph[b, a] = 1.0
    assert all(x < y for x, y in zip(lam, lam[1:])), lam
    options = og.discovery.covering_options(env, 6)
    np.testing.assert_array_equal(np.argmax(np.asarray(options.termination), axis=1), subgoals)
    with pytest.raises(ValueError, match="num_options"):
        og.discovery.covering_options(env, 3)


def test_sparse_laplacian_eigenvectors_equal_dense_ones():
    from optiongrad._src.discovery import _laplacian_vectors

    grid = og.gridworld.GridWorld.from_ascii(
        "\n".join(["w" * 73] + ["w" + " " * 71 + "w"] * 29 + ["w" * 73]))   # 71×29 = 2059
    graph = og.discovery.state_graph(og.gridworld.navigation_mdp(grid, 0.9))
    sparse = _laplacian_vectors(graph, 2)                  # shift-invert Lanczos (S > 2000)
    laplacian = np.diag(np.asarray(graph.sum(1)).ravel()) - graph.toarray()
    dense = np.linalg.eigh(laplacian)[1][:, 1:3].T
    for a, b in zip(sparse, dense):
        assert abs(a @ b) == pytest.approx(1.0, abs=1e-8)


def test_interval_is_students_t():
    got = seeds.interval([1.0, 2.0, 3.0])
    half = scipy.stats.t.ppf(0.975, 2) / np.sqrt(3)
    assert got["mean"] == 2.0 and got["std"] == 1.0
    assert got["low"] == pytest.approx(2 - half) and got["high"] == pytest.approx(2 + half)
    assert seeds.interval([0.5])["low"] == 0.5


@pytest.mark.parametrize("text,expected", [("0-4", (0, 1, 2, 3, 4)), ("3", (3,)),
                                           ("0,3,7", (0, 3, 7)), ("0-1,5", (0, 1, 5))])
def test_parse_seeds(text, expected):
    assert seeds.parse_seeds(text) == expected


@pytest.mark.parametrize("text", ["", "4-0", "a", "1,1", "-1", "0-"])
def test_parse_seeds_refuses_bad_text(text):
    with pytest.raises(ValueError, match="--seeds"):
        seeds.parse_seeds(text)


@pytest.fixture(scope="module")
def two_rooms(tmp_path_factory):
    path = tmp_path_factory.mktemp("maps") / "two-rooms.txt"
    path.write_text(TWO_ROOMS)
    return str(path)


@pytest.mark.slow
def test_learn_options_on_a_map_file_and_several_seeds(two_rooms, tmp_path, capsys):
    out = str(tmp_path / "run")
    argv = ["learn-options", "--map", two_rooms, "--options", "2", "--steps", "2", "--quiet",
            "--out", out]
    assert main([*argv, "--seeds", "0-1"]) == 0
    printed = capsys.readouterr().out
    assert "mean [95% CI]" in printed and "learned −" in printed
    with open(os.path.join(out, "summary.json")) as f:
        summary = json.load(f)
    assert summary["seeds"] == [0, 1] and os.path.getsize(os.path.join(out, "summary.png"))
    runs = []
    for seed in (0, 1):
        with open(os.path.join(out, f"seed-{seed}", "results.json")) as f:
            runs.append(json.load(f))
        assert runs[-1]["config"]["seed"] == seed and runs[-1]["config"]["map"] == two_rooms
    methods = runs[0]["methods"]
    assert set(methods) == {"learned", "primitives", "hallway", "random", "eigenoptions",
                            "covering"}
    assert methods["hallway"]["num_options"] == 2 and methods["covering"]["num_options"] == 2
    assert len(runs[0]["split"]["train"]) == 33 and len(runs[0]["split"]["test"]) == 8
    # the aggregate, recomputed from the seeds' own results
    test = {m: [r["methods"][m]["test"]["normalized_return"] for r in runs] for m in methods}
    for m in methods:
        assert summary["methods"][m]["test"]["mean"] == pytest.approx(np.mean(test[m]))
    best = summary["best_baseline"]
    assert best == max((m for m in methods if m != "learned"), key=lambda m: np.mean(test[m]))
    diff = np.subtract(test["learned"], test[best])
    paired = summary["paired_difference"]["test"]
    half = scipy.stats.t.ppf(0.975, 1) * diff.std(ddof=1) / np.sqrt(2)
    assert paired["mean"] == pytest.approx(diff.mean())
    assert paired["high"] - paired["low"] == pytest.approx(2 * half)
    # a finished multi-seed run is not overwritten silently; --resume re-evaluates it
    with pytest.raises(SystemExit):
        main([*argv, "--seeds", "0-1"])
    assert "finished run" in capsys.readouterr().err
    assert main([*argv, "--seeds", "0-1", "--resume"]) == 0
    with open(os.path.join(out, "summary.json")) as f:
        assert json.load(f)["methods"] == summary["methods"]
    with pytest.raises(SystemExit):
        main([*argv, "--seeds", "0-1", "--seed", "3"])
    assert "--seeds: conflicts with --seed" in capsys.readouterr().err


def test_four_rooms_is_learn_options_on_the_four_rooms_map(monkeypatch):
    from optiongrad.experiments import learn_options

    calls = []
    monkeypatch.setattr(learn_options, "run_learn_options",
                        lambda config, out, **kw: calls.append((config, out)) or {})
    monkeypatch.setattr(learn_options, "format_table", lambda results: "")
    common = ["--options", "2", "--steps", "7", "--seed", "4", "--quiet", "--out", "x"]
    assert main(["four-rooms", *common]) == 0
    assert main(["learn-options", "--map", "four-rooms", *common]) == 0
    assert calls[0] == calls[1] and calls[0][0].map == "four-rooms"
    assert calls[0][0] == LearnOptionsConfig(num_options=2, steps=7, seed=4)
    with pytest.raises(SystemExit):        # four-rooms has no --map
        main(["four-rooms", "--map", "nine-rooms", "--out", "x"])


@pytest.mark.slow
def test_a_goal_batch_of_all_train_goals_is_the_full_objective(two_rooms):
    full = Setup(LearnOptionsConfig(map=two_rooms, num_options=2, steps=1))
    _, rows = train_options(full, progress=False)
    _, rows_all = train_options(Setup(LearnOptionsConfig(
        map=two_rooms, num_options=2, steps=1, goal_batch=len(full.train))), progress=False)
    for r, q in zip(rows, rows_all):
        assert r["train_return"] == q["train_return"] and r["test_return"] == q["test_return"]
    _, batched = train_options(Setup(LearnOptionsConfig(
        map=two_rooms, num_options=2, steps=1, goal_batch=5)), progress=False)
    # row 0 scores the same initial options: its test return is the full one, its train
    # return the mean over a batch of 5 goals (not the whole set)
    assert batched[0]["test_return"] == pytest.approx(rows[0]["test_return"], rel=1e-12)
    assert batched[0]["train_return"] != pytest.approx(rows[0]["train_return"], rel=1e-6)
    with pytest.raises(ValueError, match="goal_batch"):
        LearnOptionsConfig(map=two_rooms, goal_batch=40).validate()


def test_scoring_held_out_goals_every_few_steps_changes_only_the_test_columns(two_rooms,
                                                                              tmp_path):
    """`eval_every=3` over 5 steps scores the held-out goals at steps 0, 3 and 4 (the last),
    with the numbers of an every-step run; the parameters and every other column are the
    same, and a run stopped after step 2 resumes to the same numbers."""
    config = LearnOptionsConfig(map=two_rooms, num_options=2, steps=5)
    params, rows = train_options(Setup(config), progress=False)
    sparse = dataclasses.replace(config, eval_every=3)
    params_sparse, rows_sparse = train_options(Setup(sparse), progress=False)
    assert [r["step"] for r in rows_sparse if r["test_return"] is not None] == [0, 3, 4]
    for r, q in zip(rows, rows_sparse):
        for name in r:
            if name == "seconds" or q[name] is None:
                continue
            assert q[name] == pytest.approx(r[name], rel=1e-12, abs=1e-15), name
        assert (q["test_normalized"] is None) == (q["test_return"] is None)
    # the held-out goals add right-hand sides to each option's solve: rounding, which Adam's
    # normalised steps carry into the parameters (measured 3e-11 relative after 5 steps)
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(params_sparse)):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    out = str(tmp_path / "run")
    train_options(Setup(dataclasses.replace(sparse, steps=3)), out, progress=False)
    with open(os.path.join(out, "metrics.csv")) as f:
        header, _, step_1, _ = f.read().splitlines()
    empty = [name for name, value in zip(header.split(","), step_1.split(",")) if not value]
    assert empty == ["test_return", "test_normalized"]
    _, resumed = train_options(Setup(sparse), out, resume=True, progress=False)
    # step 2 was the last step of the interrupted run, so it was scored too
    assert [r["step"] for r in resumed if r["test_return"] is not None] == [0, 2, 3, 4]
    for r, q in zip(rows, resumed):
        # equal bits with jax 0.9; with 0.10 the step programs with and without the held-out
        # goals round the train return differently in the last bit
        assert q["train_return"] == pytest.approx(r["train_return"], rel=1e-14, abs=0)
        assert q["test_return"] in (None, pytest.approx(r["test_return"], rel=1e-12))
    with pytest.raises(ValueError, match="eval_every"):
        LearnOptionsConfig(map=two_rooms, eval_every=0).validate()
    with pytest.raises(ValueError, match=r"eval_every \(--eval-every\)"):
        train_options(Setup(config), out, resume=True, progress=False)


def test_held_out_goals_are_scored_every_step_by_default_on_small_maps_only():
    """`eval_every=None` resolves by the map's size; an explicit value wins, and a checkpoint
    records the resolved cadence (so `--eval-every 10` and the default resume each other on a
    large map, and four-rooms records keep no `eval_every` at all)."""
    small, large = LearnOptionsConfig(), LearnOptionsConfig(map="nine-rooms")
    assert small.grid().num_states <= lo.EVAL_EVERY_CELLS < large.grid().num_states
    assert small.held_out_every() == 1 and large.held_out_every() == lo.EVAL_EVERY_LARGE
    assert dataclasses.replace(large, eval_every=1).held_out_every() == 1
    assert dataclasses.replace(small, eval_every=7).held_out_every() == 7
    assert "eval_every" not in lo._record(small)
    assert "eval_every" not in lo._record(dataclasses.replace(large, eval_every=1))
    assert lo._record(large) == lo._record(dataclasses.replace(large, eval_every=10))


def test_learn_options_config_checks_the_map():
    with pytest.raises(ValueError, match="map"):
        LearnOptionsConfig(map="atlantis").validate()
    with pytest.raises(ValueError, match="map: 10180 free cells.*method='sweeps'"):
        LearnOptionsConfig(map="hundred-rooms").validate()
    with pytest.raises(SystemExit):
        main(["learn-options", "--map", "atlantis", "--out", "/tmp/never-written"])
    assert not os.path.exists("/tmp/never-written")


def test_seeds_in_memory_without_an_output_directory(two_rooms):
    """One after another in this process, or at once in two worker processes: the same."""
    config = LearnOptionsConfig(map=two_rooms, num_options=2, steps=1)
    summary = seeds.run_seeds(config, (0, 1), None, resume=True, progress=False)
    assert summary["seeds"] == [0, 1] and set(summary["methods"]) >= {"learned", "covering"}
    assert seeds.run_seeds(config, (0, 1), None, progress=False, workers=2) == summary
    with pytest.raises(ValueError, match="--seeds"):
        seeds.run_seeds(config, (), None)


def test_seeds_share_the_seedless_work_and_get_the_same_results(two_rooms, monkeypatch):
    """A multi-seed run scores primitives, hallway, eigen- and covering options once (primitives
    once for both regimes); its per-seed results equal separate single-seed runs."""
    from optiongrad.experiments import learn_options

    config = LearnOptionsConfig(map=two_rooms, num_options=2, steps=2)
    alone = {s: learn_options.run_learn_options(LearnOptionsConfig(
        map=two_rooms, num_options=2, steps=2, seed=s), progress=False) for s in (0, 1)}
    calls = []
    scores = learn_options._goal_scores
    monkeypatch.setattr(learn_options, "_goal_scores",
                        lambda *args, **kw: calls.append(1) or scores(*args, **kw))
    shared = learn_options.MapWork(config)
    together = {s: learn_options.run_learn_options(
        LearnOptionsConfig(map=two_rooms, num_options=2, steps=2, seed=s), progress=False,
        shared=shared) for s in (0, 1)}
    # seed 0: learned 2 + random 2 + primitives 1 + hallway 2 + eigen 2 + covering 2; seed 1: 4
    assert len(calls) == 11 + 4
    for s in (0, 1):
        for regime in ("methods", "other_regime"):
            a = alone[s][regime] if regime == "methods" else alone[s][regime]["methods"]
            b = together[s][regime] if regime == "methods" else together[s][regime]["methods"]
            assert a.keys() == b.keys()
            for name in a:
                for split in ("train", "test"):
                    for field, value in a[name][split].items():
                        assert b[name][split][field] == pytest.approx(value, rel=1e-12, nan_ok=True), (
                            s, regime, name, split, field)
    with pytest.raises(ValueError, match="shared"):
        learn_options.run_learn_options(LearnOptionsConfig(map=two_rooms, num_options=4),
                                        progress=False, shared=shared)


@pytest.mark.slow
def test_seeds_in_parallel_processes_equal_the_sequential_run(two_rooms, tmp_path, capsys):
    """Seed 0 run alone, then seeds 0-1 resumed in two spawned worker processes (seed 0 is
    re-evaluated from its checkpoint, seed 1 runs): the results.json numbers and the summary
    of sequential runs in this process; a finished run is refused, not overwritten."""
    config = LearnOptionsConfig(map=two_rooms, num_options=2, steps=2)
    out = str(tmp_path / "parallel")
    seeds.run_seeds(config, (0,), out, progress=False)
    with open(os.path.join(out, "seed-0", "results.json")) as f:
        sequential = {0: json.load(f)}
    parallel = seeds.run_seeds(config, (0, 1), out, resume=True, workers=2)
    printed = capsys.readouterr().out
    assert "2 at a time" in printed and "seed 1 done" in printed and "seed 0 done" in printed
    sequential[1] = json.loads(json.dumps(lo.run_learn_options(
        dataclasses.replace(config, seed=1), progress=False)))
    for s in (0, 1):
        with open(os.path.join(out, f"seed-{s}", "results.json")) as f:
            written = json.load(f)
        for key in ("methods", "other_regime", "split", "config"):
            assert written[key] == sequential[s][key], (s, key)
    assert parallel == json.loads(json.dumps(seeds.summarise(sequential)))
    with pytest.raises(ValueError, match="finished run"):
        seeds.run_seeds(config, (0, 1), out, workers=2)
    with pytest.raises(ValueError, match="--workers"):
        seeds.run_seeds(config, (0, 1), None, workers=0)
    assert seeds.default_workers(1) == 1 and 1 <= seeds.default_workers(64) <= os.cpu_count()


def test_small_maps_score_every_set_with_one_program(two_rooms, monkeypatch):
    """On a small map every option set of at most K options, in both regimes, and primitives
    alone are scored by one compiled program (padded sets); the scores are those of scoring
    each set as it is."""
    from optiongrad.experiments import learn_options

    config = LearnOptionsConfig(map=two_rooms, num_options=2, steps=1)
    setup = Setup(config)
    sets = {name: o for name, o in learn_options.baselines(setup).items()
            if o.num_options <= config.num_options}
    sets["primitives"] = None
    assert len(sets) >= 3
    regimes = (config.planner, config.planner.replace(include_primitives=False))

    def scores():
        return {(name, p.include_primitives): learn_options.evaluate(setup, o, p)
                for name, o in sets.items() for p in regimes}

    learn_options._goal_scores.clear_cache()
    shared = scores()
    assert learn_options._goal_scores._cache_size() == 1
    monkeypatch.setattr(learn_options, "SHARED_PROGRAM_STATES", 0)
    alone = scores()
    assert learn_options._goal_scores._cache_size() >= 3
    for key, want in alone.items():
        assert shared[key]["num_options"] == want["num_options"]
        for split in ("train", "test"):
            for field, value in want[split].items():
                assert shared[key][split][field] == pytest.approx(
                    value, rel=1e-10, abs=1e-12, nan_ok=True), (key, split, field)
