"""Model assertions panel: multibox and flicker assertions over a simulated detector's stream."""
import numpy as np

from aijack_lab.defense.debugging.assertions import (
    ModelAssertionMonitor,
    assert_multibox,
    except_flicker,
    simulate_detections,
)

from .base import Panel
from .params import FloatParam, IntParam
from .registry import register


@register("Defense", "Debugging", "Model Assertions")
class ModelAssertionsPanel(Panel):
    title = "Model assertions — monitoring a detector's outputs"
    description = (
        "Assertions are predicates over a model's outputs that flag likely errors at run time, with no labels. "
        "<i>multibox</i> fires when three boxes overlap (one object detected several times); <i>flicker</i> fires "
        "when an object vanishes for a frame and comes back. The stream is a simulated detector with injected faults."
    )
    reference = "Kang, Raghavan, Bailis, Zaharia. Model Assertions for Monitoring and Improving ML Models. MLSys 2020."
    params = (
        IntParam("num_frames", 40, min=10, max=200, label="frames"),
        FloatParam("multibox_rate", 0.1, min=0.0, max=0.5, step=0.01, label="multibox fault rate"),
        FloatParam("flicker_rate", 0.1, min=0.0, max=0.5, step=0.01, label="flicker fault rate"),
        FloatParam("iou_threshold", 0.3, min=0.05, max=0.95, step=0.05, label="multibox IoU threshold"),
        IntParam("seed", 0, min=0, max=100),
    )
    reproducible = ("flagged_multibox", "flagged_flicker")
    figsize = (9.0, 3.0)

    def compute(self, v, progress):
        frames, injected = simulate_detections(v["num_frames"], v["multibox_rate"], v["flicker_rate"], seed=v["seed"])
        monitor = ModelAssertionMonitor(
            lambda i: frames[i],
            assertions={"multibox": lambda out, x, i: assert_multibox(out, iou_threshold=v["iou_threshold"])},
            sequence_assertions={"flicker": except_flicker},
        )
        monitor.run(range(len(frames)))
        progress(1, 1)
        flagged_m, flagged_f = monitor.flagged("multibox"), monitor.flagged("flicker")
        injected_all = set(injected["multibox"]) | set(injected["flicker"])
        flagged_all = set(flagged_m) | set(flagged_f)
        hit = len(injected_all & flagged_all)
        result = {
            "injected_multibox": injected["multibox"],
            "flagged_multibox": flagged_m,
            "injected_flicker": injected["flicker"],
            "flagged_flicker": flagged_f,
            "recall": hit / len(injected_all) if injected_all else 1.0,
            "precision": hit / len(flagged_all) if flagged_all else 1.0,
        }
        return result, {"num_boxes": [len(f) for f in frames]}

    def draw(self, fig, result, data):
        ax = fig.subplots()
        t = np.arange(len(data["num_boxes"]))
        ax.bar(t, data["num_boxes"], color="#bbb", label="boxes in frame")
        ax.scatter(result["injected_multibox"], [3.4] * len(result["injected_multibox"]), marker="v", c="C0", label="injected multibox")
        ax.scatter(result["flagged_multibox"], [3.8] * len(result["flagged_multibox"]), marker="x", c="C0", label="flagged multibox")
        ax.scatter(result["injected_flicker"], [0.4] * len(result["injected_flicker"]), marker="v", c="C3", label="injected flicker")
        ax.scatter(result["flagged_flicker"], [0.8] * len(result["flagged_flicker"]), marker="x", c="C3", label="flagged flicker")
        ax.set_xlabel("frame")
        ax.set_ylabel("detections")
        ax.set_ylim(0, 4.5)
        ax.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.2))
        ax.set_title(f"recall {result['recall']:.2f}, precision {result['precision']:.2f}", fontsize=9)

    def code(self, v):
        return f"""\
from aijack_lab.defense.debugging.assertions import (
    ModelAssertionMonitor, assert_multibox, except_flicker, simulate_detections)

frames, injected = simulate_detections({v['num_frames']}, {v['multibox_rate']!r}, {v['flicker_rate']!r}, seed={v['seed']})
detector = lambda i: frames[i]          # the model under test: frame index -> boxes
monitor = ModelAssertionMonitor(
    detector,
    assertions={{"multibox": lambda out, x, i: assert_multibox(out, iou_threshold={v['iou_threshold']!r})}},
    sequence_assertions={{"flicker": except_flicker}},
)
violations = monitor.run(range(len(frames)))
flagged_multibox = monitor.flagged("multibox")
flagged_flicker = monitor.flagged("flicker")
print("injected", injected)
print("flagged ", {{"multibox": flagged_multibox, "flicker": flagged_flicker}})
"""
