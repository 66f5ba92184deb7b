"""Solve, extrapolate, read out, decode and respace: the frames each node promises."""
from __future__ import annotations

import dataclasses
import re

import pytest
import torch
from density_geodesics.geodesic_pipeline.strength import strength_evals
from density_geodesics.nodes import DecodePath, DensityReadout, PathToLatent, RespacePath, SolveBVP, SolveIVP
from inprocess_support import FAST_BVP, NOISE_LEVEL, SIZE

from devtools.markdown_tables import markdown_tables


def test_solve_bvp_exact_frames_through_every_keyframe(sd, keyframes):
    for frames in (5, 8):
        path, report, _ = SolveBVP.execute(sd["model"], keyframes, frames, False, "by distance",
                                        **{**FAST_BVP, "sphere": False})
        assert len(path) == frames
        assert report.count("segment") == 2
        # Without the sphere constraint keyframes are kept bit-exact; each appears exactly once.
        hits = [[i for i in range(frames) if torch.equal(path.points[i], k)] for k in keyframes.points]
        assert hits[0] == [0] and len(hits[1]) == 1 and hits[2] == [frames - 1]
        assert torch.isfinite(path.points).all() and path.log_density.shape == (frames,)
        assert torch.all(path.t[1:] > path.t[:-1])
    # With the sphere constraint every frame, keyframes included, lies on one sphere (no jump at keyframes).
    path, _, _ = SolveBVP.execute(sd["model"], keyframes, 6, False, "by distance", **FAST_BVP)
    norms = path.points.reshape(len(path), -1).norm(dim=-1)
    torch.testing.assert_close(norms, norms.mean().expand(len(path)), rtol=1e-5, atol=0)  # float32 rescale


def test_solve_bvp_loop_closes_back_to_the_first_keyframe(sd, keyframes):
    path, _, _ = SolveBVP.execute(sd["model"], keyframes, 7, True, "equal", **{**FAST_BVP, "sphere": False})
    assert len(path) == 7
    assert torch.equal(path.points[0], keyframes.points[0])
    assert not torch.equal(path.points[-1], keyframes.points[0])  # the closing copy is left out
    for k in keyframes.points[1:]:
        assert sum(torch.equal(p, k) for p in path.points) == 1
    # The closing segment blends back to the first keyframe's (cat) conditioning.
    assert path.schedule.conditionings[-1] is sd["cat"]


def test_ivp_readout_decode_on_a_solved_path(sd, solved):
    model = sd["model"]
    path = solved
    assert path.end_tangent is not None
    onward = SolveIVP.execute(model, path, 2, "end tangent", "forward", 0.002, True, 4, 0.0)[0]
    backward = SolveIVP.execute(model, path, 1, "last two frames", "backward", 0.002, True, 4, 0.0)[0]
    assert len(onward) == 2 and len(backward) == 1
    assert torch.isfinite(onward.points).all() and torch.isfinite(backward.points).all()
    # The first extrapolated frame is about one frame step beyond the last frame.
    step = (path.points[-1] - path.points[-2]).norm()
    assert 0.5 * step < (onward.points[0] - path.points[-1]).norm() < 2.0 * step

    plot, table = DensityReadout.execute(model, path, True, 0.002, True, "default", 1e-3, 24, 4, 0.0).args[:2]
    assert plot.shape[0] == 1 and plot.shape[-1] == 3 and plot.min() >= 0.0 and plot.max() <= 1.0
    assert len(markdown_tables(table)[0]) == len(path)

    latent, images, report, frames_path = DecodePath.execute(model, path, 2, 4, vae=sd["vae"]).args
    assert latent["samples"].shape == (5, 4, SIZE // 8, SIZE // 8)
    assert images.shape == (5, SIZE, SIZE, 3) and frames_path is path
    preview = DecodePath.execute(model, path, 2, 4).args[1]
    assert preview.shape == (5, SIZE, SIZE, 3)
    noisy, level = PathToLatent.execute(model, path).args
    assert level == NOISE_LEVEL and noisy["samples"].shape == (5, 4, SIZE // 8, SIZE // 8)


def test_respace_path_evenly_in_geodesic_distance(sd, solved):
    model = sd["model"]
    path = solved
    uneven = dataclasses.replace(path, points=path.points[[0, 1, 4]], t=path.t[[0, 1, 4]])
    (respaced,) = RespacePath.execute(model, uneven, 7, 0.002, True, 4, 0.0).args
    assert len(respaced) == 7 and respaced.t[0] == 0 and respaced.t[-1] == 1
    assert torch.equal(respaced.points[[0, -1]], uneven.points[[0, -1]])
    def step_ratio(some_path):
        table = DensityReadout.execute(model, some_path, False, 0.002, True, "default", 1e-3, 24, 4, 0.0).args[1]
        distances = torch.tensor([float(row["distance"]) for row in markdown_tables(table)[0]])
        return float(distances.diff().max() / distances.diff().min())

    # Re-read on the new polyline (which cuts the uneven path's corner) the steps are not exactly equal,
    # but far more even than the 3:1 steps of the uneven path.
    assert step_ratio(uneven) > 2.5 and step_ratio(respaced) < 1.5


def test_strength_sets_alpha_from_the_keyframes_and_old_calls_keep_theirs(sd, keyframes):
    """Without strength (a workflow made before it existed) the given alpha is used and reported; with one,
    alpha = strength / the pull the report states, and solving at that alpha directly gives the
    same path."""
    model = sd["model"]
    old_path, _, old_alpha = SolveBVP.execute(model, keyframes, 5, False, "equal", **FAST_BVP)
    assert old_alpha == FAST_BVP["alpha"]
    # 400 evaluations: the pull's readout takes 7, the solve the rest (given directly below)
    path, report, alpha = SolveBVP.execute(model, keyframes, 5, False, "equal",
                                           **{**FAST_BVP, "max_evals": 400}, strength=2.0)
    stated = re.match(r"alpha (\S+) = strength 2 / pull (\S+) ", report.splitlines()[0])
    assert stated, report
    assert alpha == pytest.approx(2.0 / float(stated[2]), rel=1e-3)
    assert float(stated[1]) == pytest.approx(alpha, rel=1e-3)
    again, _, _ = SolveBVP.execute(model, keyframes, 5, False, "equal",
                                   **{**FAST_BVP, "alpha": alpha, "max_evals": 400 - strength_evals(1)})
    torch.testing.assert_close(again.points, path.points)
    assert not torch.equal(old_path.points, path.points)


def test_strength_gives_extrapolation_and_readout_the_alpha_they_report(sd, solved):
    """Extrapolation and Density Readout turn a strength into alpha between the path's first and last frames
    (in the conditioning each reads the path in): the alpha they report reproduces their result when given
    directly, and without a strength (a workflow made before it existed) the given alpha is used and reported."""
    model, path = sd["model"], solved
    ivp = ("end tangent", "forward", 0.002, True, 4, 0.0)
    _, old_alpha = SolveIVP.execute(model, path, 2, *ivp).args
    assert old_alpha == 0.002
    onward, alpha = SolveIVP.execute(model, path, 2, *ivp, strength=2.0).args
    assert alpha != 0.002 and alpha > 0
    again, same_alpha = SolveIVP.execute(model, path, 2, "end tangent", "forward", alpha, True, 4, 0.0).args
    assert same_alpha == alpha
    torch.testing.assert_close(again.points, onward.points)

    readout = (False, 0.002, True, "default", 1e-3, 400, 4, 0.0)
    _, table, length = DensityReadout.execute(model, path, *readout, strength=2.0).args[:3]
    summary = {row["number"]: row for row in markdown_tables(table)[1]}
    stated = re.match(r"= strength 2 / pull (\S+)$", summary["alpha"]["meaning"])
    assert stated, summary
    read_alpha = float(summary["alpha"]["value"])
    assert read_alpha == pytest.approx(2.0 / float(stated[1]), rel=1e-3)
    # Extrapolation reads the pull in the conditioning of the end it continues, the readout in the path's own
    # blend of its keyframes' prompts: two densities, two alphas
    assert read_alpha != pytest.approx(alpha, rel=1e-3)
    # the pull's readout came out of the 400 evaluations; the table states alpha to 4 significant figures, which
    # moves exp(-alpha log p) over these few nats by well under 1e-3
    direct = DensityReadout.execute(model, path, False, read_alpha, True, "default", 1e-3, 400 - strength_evals(1), 4,
                                    0.0).args
    assert direct[2] == pytest.approx(length, rel=1e-3)
    given = {row["number"]: row for row in markdown_tables(direct[1])[1]}["alpha"]
    assert given == {"number": "alpha", "value": f"{read_alpha:.4g}", "meaning": "density weight, as given"}
