"""SecureBoost panel: boosted trees over parties that each hold some breast-cancer columns."""
import numpy as np

from aijack_lab.collaborative.tree import (
    SecureBoostClassifierAPI,
    SecureBoostClient,
    XGBoostClassifierAPI,
    XGBoostClient,
)
from aijack_lab.datasets import load_breast_cancer
from aijack_lab.defense.paillier import PaillierKeyGenerator

from .base import Panel
from .params import ChoiceParam, IntParam
from .registry import register

_COLORS = ["tab:blue", "tab:orange", "tab:green"]


@register("FL", "Vertical", "SecureBoost")
class SecureBoostPanel(Panel):
    title = "SecureBoost — boosted trees over vertically split data"
    description = (
        "Breast cancer's 30 columns are split over 2–3 parties; party 0 also holds the labels. Each tree: "
        "party 0 encrypts every row's gradient and hessian (Paillier), the others add the ciphertexts per "
        "histogram bin without a key, party 0 decrypts the bin sums, picks the best split and the owner "
        "keeps the threshold. The trees equal plaintext XGBoost on the same bins."
    )
    reference = "Cheng et al. SecureBoost: a lossless federated learning framework. IEEE Intelligent Systems, 2021."
    params = (
        ChoiceParam("n_parties", 3, options=(("2 parties", 2), ("3 parties", 3)), label="parties"),
        IntParam("boosting_rounds", 5, min=1, max=20, label="trees"),
        IntParam("depth", 3, min=1, max=5),
        IntParam("num_percentile_bin", 16, min=4, max=64, label="bins"),
        ChoiceParam("bits", 1024, options=(("1024-bit n (teaching)", 1024), ("2048-bit n", 2048)), label="key"),
    )
    reproducible = ("accuracy", "plaintext_accuracy", "trees_equal")

    def compute(self, v, progress):
        X_train, y_train, X_test, y_test = load_breast_cancer(standardize=False)
        cols = np.array_split(np.arange(X_train.shape[1]), v["n_parties"])
        pk, sk = PaillierKeyGenerator(v["bits"], seed=0).generate_keypair()
        sp = [SecureBoostClient(X_train[:, c], 2, c.tolist(), i, 1, 1.0, v["num_percentile_bin"], False, 0)
              for i, c in enumerate(cols)]
        for p in sp:
            p.set_publickey(pk)
        sp[0].set_secretkey(sk)
        kw = dict(boosting_rounds=v["boosting_rounds"], depth=v["depth"], learning_rate=0.3, init_value=0.0)
        sec = SecureBoostClassifierAPI(2, n_job=2, **kw).fit(sp, y_train, progress=progress)
        pp = [XGBoostClient(X_train[:, c], 2, c.tolist(), i, 1, 1.0, v["num_percentile_bin"], False, 0)
              for i, c in enumerate(cols)]
        plain = XGBoostClassifierAPI(2, **kw).fit(pp, y_train)
        t = sec.timings
        owners = [n["party_id"] for tr in sec.trees for n in tr if not n["leaf"]]
        result = {
            "accuracy": float((sec.predict(X_test) == y_test).mean()),
            "plaintext_accuracy": float((plain.predict(X_test) == y_test).mean()),
            "trees_equal": sec.trees == plain.trees,
            "splits_per_party": [owners.count(i) for i in range(v["n_parties"])],
            "encryption_s": t["encryption"],
            "aggregation_s": t["aggregation"],
            "decryption_s": t["decryption"],
            "building_s": t["building"],
            "encryptions": t["encryptions"],
            "decryptions": t["decryptions"],
            "encrypted_bin_sums": t["encrypted_sums"],
        }
        return result, {"tree": sec.describe_trees()[0], "loss": sec.logging_loss}

    def draw(self, fig, result, data):
        ax1, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 2]})
        names = ["encrypt", "aggregate", "decrypt", "build"]
        ax1.bar(names, [result[k] for k in ("encryption_s", "aggregation_s", "decryption_s", "building_s")],
                color=["tab:red", "tab:purple", "tab:brown", "tab:gray"])
        ax1.set_ylabel("seconds")
        ax1.set_title(f"time ({result['decryptions']} decryptions for {result['encrypted_bin_sums']} sums)", fontsize=8)
        ax1.tick_params(axis="x", labelsize=7)
        tree = data["tree"]
        pos = {}

        def place(i, x, w):
            pos[i] = (x, -tree[i]["depth"])
            if not tree[i]["leaf"]:
                place(tree[i]["left"], x - w / 2, w / 2)
                place(tree[i]["right"], x + w / 2, w / 2)

        place(0, 0.0, 1.0)
        for i, nd in enumerate(tree):
            x, yv = pos[i]
            if not nd["leaf"]:
                for c in (nd["left"], nd["right"]):
                    ax2.plot([x, pos[c][0]], [yv, pos[c][1]], color="0.7", lw=0.8, zorder=1)
                ax2.text(x, yv, f"P{nd['party_id']}: x{nd['feature_id']}≤{nd['threshold']:.3g}", ha="center",
                         va="center", fontsize=6, color="white",
                         bbox=dict(boxstyle="round", fc=_COLORS[nd["party_id"] % 3], ec="none"), zorder=2)
            else:
                ax2.text(x, yv, f"{nd['weight'][0]:+.2f}", ha="center", va="center", fontsize=6,
                         bbox=dict(boxstyle="round", fc="0.92", ec="0.6"), zorder=2)
        ax2.set_xlim(-1.1, 1.1)
        ax2.set_ylim(min(p[1] for p in pos.values()) - 0.5, 0.5)
        ax2.axis("off")
        ax2.set_title("first tree: which party owns each split (its threshold stays with it)", fontsize=8)

    def code(self, v):
        return f"""\
import numpy as np
from aijack_lab.collaborative.tree import (SecureBoostClassifierAPI, SecureBoostClient,
                                           XGBoostClassifierAPI, XGBoostClient)
from aijack_lab.datasets import load_breast_cancer
from aijack_lab.defense.paillier import PaillierKeyGenerator

X_train, y_train, X_test, y_test = load_breast_cancer(standardize=False)
cols = np.array_split(np.arange(X_train.shape[1]), {v['n_parties']})   # each party's columns
pk, sk = PaillierKeyGenerator({v['bits']}, seed=0).generate_keypair()

parties = [SecureBoostClient(X_train[:, c], 2, c.tolist(), i, 1, 1.0, {v['num_percentile_bin']}, False, 0)
           for i, c in enumerate(cols)]
for p in parties:
    p.set_publickey(pk)
parties[0].set_secretkey(sk)   # party 0 holds the labels and the secret key
clf = SecureBoostClassifierAPI(2, boosting_rounds={v['boosting_rounds']}, depth={v['depth']},
                               learning_rate=0.3, init_value=0.0, n_job=2)
clf.fit(parties, y_train)
accuracy = float((clf.predict(X_test) == y_test).mean())
print(clf.timings)

plain = XGBoostClassifierAPI(2, boosting_rounds={v['boosting_rounds']}, depth={v['depth']},
                             learning_rate=0.3, init_value=0.0)
plain.fit([XGBoostClient(X_train[:, c], 2, c.tolist(), i, 1, 1.0, {v['num_percentile_bin']}, False, 0)
           for i, c in enumerate(cols)], y_train)
plaintext_accuracy = float((plain.predict(X_test) == y_test).mean())
trees_equal = clf.trees == plain.trees
print(accuracy, plaintext_accuracy, trees_equal)
"""
