"""Every script in examples/ runs, and what it prints holds up."""

import os
import re
import subprocess
import sys

import pytest

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


def run(script, *args):
    result = subprocess.run([sys.executable, os.path.join(EXAMPLES, script), *args],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return result.stdout


def numbers(pattern, text):
    match = re.search(pattern, text)
    assert match, (pattern, text)
    return [float(x) for x in match.groups()]


def test_every_example_is_tested():
    tested = {"frozenlake_planning.py", "intrinsic_reward.py", "hallway_options.py",
              "option_gradient_custom_map.py"}
    assert {f for f in os.listdir(EXAMPLES) if f.endswith(".py")} == tested


def test_frozenlake_planning():
    out = run("frozenlake_planning.py", "--episodes", "1500")
    assert "converged=True" in out
    for name in ("optimal", "smooth"):
        predicted, mean, stderr, z = numbers(
            name + r": predicted ([\d.]+), gymnasium ([\d.]+) ± ([\d.]+) \(z = ([+-][\d.]+)\)", out)
        assert abs(z) < 4 and predicted > 0.1


def test_intrinsic_reward():
    out = run("intrinsic_reward.py", "--steps", "30")
    before, after = numbers(r"bounded planner: ([\d.]+) -> ([\d.]+)", out)
    assert before < 0.5 and after > 0.95


def test_hallway_options():
    out = run("hallway_options.py", "--episodes", "1000")
    assert "slip 0.00: value iteration sweeps until the greedy policy is optimal: 2 with " \
           "hallway options, 13 with primitive actions only" in out
    mean, stderr, predicted = numbers(r"mean return ([\d.]+) ± ([\d.]+) \(predicted ([\d.]+)\)",
                                      out)
    assert abs(mean - predicted) < 4 * stderr


@pytest.mark.slow
def test_option_gradient_custom_map():
    out = run("option_gradient_custom_map.py", "--steps", "15")
    alone, initial, learned = numbers(
        r"primitives alone ([\d.]+), \+ initial options ([\d.]+), \+ learned options ([\d.]+)",
        out)
    assert alone < initial < learned
