"""Every algorithm of the paper's Table 1 (../ALGORITHMS.md), with its library API.

The gallery and the README's table are generated from this list and the panel registry: an
algorithm is "available" exactly when a panel is registered for it.
Run ``python -m aijack_lab.widgets.catalog --write-readme README.md`` to refresh the README.
"""
import argparse
import sys
from dataclasses import dataclass
from typing import List, Tuple

TYPES = ("FL", "Attack", "Defense")


@dataclass(frozen=True)
class Algorithm:
    type: str
    subcategory: str
    name: str
    api: str

    @property
    def key(self) -> Tuple[str, str, str]:
        return (self.type, self.subcategory, self.name)


CATALOG: List[Algorithm] = [
    Algorithm("FL", "Horizontal", "FedAVG", "FedAVGClient, FedAVGServer, FedAVGAPI"),
    Algorithm("FL", "Horizontal", "FedProx", "FedProxClient, FedProxAPI"),
    Algorithm("FL", "Horizontal", "FedKD", "FedKDClient"),
    Algorithm("FL", "Horizontal", "FedMD", "FedMDClient, FedMDServer, FedMDAPI"),
    Algorithm("FL", "Horizontal", "FedGEMS", "FedGEMSClient, FedGEMSServer, FedGEMSAPI"),
    Algorithm("FL", "Horizontal", "DSFL", "DSFLClient, DSFLServer, DSFLAPI"),
    Algorithm("FL", "Horizontal", "MOON", "MOONClient"),
    Algorithm("FL", "Horizontal", "FedEXP", "FedEXPServer"),
    Algorithm("FL", "Vertical", "SplitNN", "SplitNNClient, SplitNNAPI"),
    Algorithm("FL", "Vertical", "SecureBoost", "SecureBoostClassifierAPI, SecureBoostClient, XGBoostClassifierAPI, XGBoostClient"),
    Algorithm("Attack", "Model Inversion", "MI-FACE", "MI_FACE"),
    Algorithm("Attack", "Model Inversion", "DLG", 'GradientInversion_Attack(distancename="l2")'),
    Algorithm("Attack", "Model Inversion", "iDLG", "GradientInversion_Attack(optimize_label=False)"),
    Algorithm("Attack", "Model Inversion", "GS", 'GradientInversion_Attack(distancename="cossim", tv_reg_coef=...)'),
    Algorithm("Attack", "Model Inversion", "CPL", "GradientInversion_Attack(lm_reg_coef=...)"),
    Algorithm("Attack", "Model Inversion", "GradInversion", "GradientInversion_Attack(bn_reg_coef=..., gc_reg_coef=...)"),
    Algorithm("Attack", "Model Inversion", "GAN Attack", "GANAttackClientManager"),
    Algorithm("Attack", "Label Leakage", "Norm Attack", "NormAttackSplitNNManager"),
    Algorithm("Attack", "Poisoning", "History Attack", "HistoryAttackClientWrapper"),
    Algorithm("Attack", "Poisoning", "Label Flip", "LabelFlipAttackClientManager"),
    Algorithm("Attack", "Poisoning", "MAPF", "MAPFClientWrapper"),
    Algorithm("Attack", "Poisoning", "SVM Poisoning", "Poison_attack_sklearn"),
    Algorithm("Attack", "Backdoor", "DBA", "DistributedBackdoorAttackClientManager"),
    Algorithm("Attack", "Backdoor", "Model Replacement", "ModelReplacementAttackClientManager"),
    Algorithm("Attack", "Free-Rider", "Delta-Weight", "FreeRiderClientManager"),
    Algorithm("Attack", "Evasion", "Gradient-Descent", "Evasion_attack_sklearn"),
    Algorithm("Attack", "Evasion", "FGSM", "FGSMAttacker"),
    Algorithm("Attack", "Evasion", "DIVA", "DIVAWhiteBoxAttacker"),
    Algorithm("Attack", "Membership Inference", "Shadow", "ShadowMembershipInferenceAttack"),
    Algorithm("Defense", "Homomorphic Encryption", "Paillier", "PaillierKeyGenerator, PaillierTensor, PaillierGradientClientManager"),
    Algorithm("Defense", "Differential Privacy", "DPSGD", "GeneralMomentAccountant, DPSGDManager"),
    Algorithm("Defense", "Differential Privacy", "AdaDPS", "AdaDPSManager"),
    Algorithm("Defense", "Differential Privacy", "DPlis", "DPSGDManager(..., smoothing=True, smoothing_radius=r)"),
    Algorithm("Defense", "Anonymization", "Mondrian", "Mondrian"),
    Algorithm("Defense", "Robustness", "PixelDP", "PixelDP"),
    Algorithm("Defense", "Robustness", "Cost-Aware Robust Trees", "XGBoostClient.set_cost_constraint_map"),
    Algorithm("Defense", "Debugging", "Model Assertions", "assert_multibox, except_flicker"),
    Algorithm("Defense", "Debugging", "Rain", "Rain"),
    Algorithm("Defense", "Debugging", "Neuron Coverage", "NeuronCoverageTracker"),
    Algorithm("Defense", "Others", "Soteria", "SoteriaClientManager"),
    Algorithm("Defense", "Others", "FoolsGold", "FoolsGoldServerManager"),
    Algorithm("Defense", "Others", "MID", "VIB, mib_loss, KL_between_normals"),
    Algorithm("Defense", "Others", "Sparse Gradient", "SparseGradientClientManager, SparseGradientServerManager"),
]

BY_KEY = {a.key: a for a in CATALOG}

README_START = "<!-- algorithms:start -->"
README_END = "<!-- algorithms:end -->"


def readme_table() -> str:
    """The README's algorithm table, from the catalog and the panel registry."""
    from .registry import entries

    registered = {key: entry for key, entry in entries().items()}
    lines = [
        "| Type | Subcategory | Algorithm | Library API | Panel | Status |",
        "|---|---|---|---|---|---|",
    ]
    for a in CATALOG:
        entry = registered.get(a.key)
        panel = f"`{entry.panel_cls.__name__}`" if entry else "—"
        status = "available" if entry else "not yet available"
        lines.append(f"| {a.type} | {a.subcategory} | {a.name} | `{a.api}` | {panel} | {status} |")
    return "\n".join(lines)


def replace_readme_table(text: str) -> str:
    if README_START not in text or README_END not in text:
        raise ValueError(f"README lacks the markers {README_START} / {README_END}")
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    return f"{head}{README_START}\n{readme_table()}\n{README_END}{tail}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write-readme", metavar="PATH", help="rewrite the table in this README")
    args = parser.parse_args(argv)
    if args.write_readme:
        with open(args.write_readme, encoding="utf-8") as f:
            text = f.read()
        new = replace_readme_table(text)
        with open(args.write_readme, "w", encoding="utf-8") as f:
            f.write(new)
    else:
        sys.stdout.write(readme_table() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
