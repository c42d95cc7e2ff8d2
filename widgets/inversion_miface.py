"""MI-FACE panel: one reconstruction per digit class beside the class means it should resemble."""
import numpy as np
import torch

from aijack_lab.attack import MI_FACE
from aijack_lab.attack.inversion.miface import smooth_process

from .base import Panel
from .common import digits, digits_model, show_digit_row
from .params import ChoiceParam, FloatParam, IntParam
from .registry import register


@register("Attack", "Model Inversion", "MI-FACE")
class MIFACEPanel(Panel):
    title = "MI-FACE — model inversion by gradient descent"
    description = (
        "With white-box access to a trained digits classifier, gradient descent on the input lowers "
        "1 − p(label | x), starting from a blank image. Each reconstruction is compared with every class's mean "
        "training image: the attack recovers what the class looks like without seeing any of its training data."
    )
    reference = "Fredrikson, Jha, Ristenpart. Model Inversion Attacks that Exploit Confidence Information. CCS 2015."
    params = (
        ChoiceParam("model", "mlp", options=("mlp", "cnn"), label="target model"),
        FloatParam("lam", 0.1, min=0.01, max=1.0, step=0.01, label="λ (step size)"),
        IntParam("num_itr", 150, min=10, max=500, step=10, label="iterations"),
        FloatParam("denoise", 0.0, min=0.0, max=0.3, step=0.01, label="denoise weight (Process)"),
        IntParam("seed", 0, min=0, max=100),
    )
    reproducible = ("nearest_mean_correct", "final_costs")
    figsize = (9.0, 2.6)

    def compute(self, values, progress):
        x_train, y_train, _, _ = digits()
        model = digits_model(values["model"], 10, values["seed"])
        means = torch.stack([x_train[y_train == c].mean(0) for c in range(10)])
        recon, costs, correct = [], [], 0
        for c in range(10):
            process = smooth_process(values["denoise"]) if values["denoise"] > 0 else None
            attacker = MI_FACE(model, (1, 1, 8, 8), target_label=c, lam=values["lam"], num_itr=values["num_itr"],
                               process_func=process)
            x_result, log = attacker.attack()
            mse = ((means - x_result[0]) ** 2).flatten(1).mean(1)
            correct += int(mse.argmin().item() == c)
            recon.append(x_result[0, 0].numpy())
            costs.append(log[-1])
            progress(c + 1, 10)
        result = {"nearest_mean_correct": correct, "final_costs": costs, "mean_final_cost": float(np.mean(costs))}
        return result, {"recon": np.stack(recon), "means": means[:, 0].numpy()}

    def draw(self, fig, result, data):
        axes = fig.subplots(2, 10)
        show_digit_row(axes[0], data["recon"], [f"MI-FACE {c}" for c in range(10)])
        show_digit_row(axes[1], data["means"], [f"mean {c}" for c in range(10)])
        fig.suptitle(f"{result['nearest_mean_correct']}/10 reconstructions are nearest to their own class mean", fontsize=9)

    def code(self, v):
        process = f"smooth_process({v['denoise']!r})" if v["denoise"] > 0 else "None"
        return f"""\
import torch
from aijack_lab.attack import MI_FACE
from aijack_lab.attack.inversion.miface import smooth_process
from aijack_lab.datasets import load_digits
from aijack_lab.models import train_digits_model

X_train, y_train, X_test, y_test = load_digits()
model = train_digits_model({v['model']!r}, epochs=10, seed={v['seed']})
means = torch.stack([X_train[y_train == c].mean(0) for c in range(10)])  # only to judge the result

input_shape = (1, 1, 8, 8)
nearest_mean_correct, final_costs = 0, []
for label in range(10):
    mi = MI_FACE(model, input_shape, target_label=label, lam={v['lam']!r}, num_itr={v['num_itr']}, process_func={process})
    x_result, log = mi.attack()
    mse = ((means - x_result[0]) ** 2).flatten(1).mean(1)
    nearest_mean_correct += int(mse.argmin().item() == label)
    final_costs.append(log[-1])
print(f"{{nearest_mean_correct}}/10 reconstructions are nearest to their own class mean")
"""
