"""Mondrian panel: equivalence classes in 2-D, the generalized table, class sizes, information loss vs k."""
import numpy as np

from aijack_lab.datasets.tables import load_diabetes_frame, make_census_like
from aijack_lab.defense.kanonymity import Mondrian

from .base import Panel
from .params import ChoiceParam, IntParam
from .registry import register

# value: "table:cont1,cont2[,...]|cat1,..." - the first two continuous columns are the 2-D view
QI_CHOICES = (
    ("census: age, income + job", "census:age,income|job"),
    ("census: age, income", "census:age,income|"),
    ("census: age, hours + job, education", "census:age,hours|job,education"),
    ("census: age, income, hours", "census:age,income,hours|"),
    ("diabetes (bundled): age, bmi + sex", "diabetes:age,bmi|sex"),
    ("diabetes (bundled): bmi, bp", "diabetes:bmi,bp|"),
)
K_GRID = [2, 3, 5, 10, 20, 50]


def parse_choice(value):
    table, rest = value.split(":")
    cont, cat = rest.split("|")
    cont = [c for c in cont.split(",") if c]
    cat = [c for c in cat.split(",") if c]
    sensitive = "disease" if table == "census" else "progression"
    return table, cont, cat, sensitive


def load_table(table, n_rows, seed):
    return make_census_like(n_rows, seed=seed) if table == "census" else load_diabetes_frame()


@register("Defense", "Anonymization", "Mondrian")
class MondrianPanel(Panel):
    title = "Mondrian k-anonymity"
    description = (
        "Recursively cuts the table at the median of the quasi-identifier with the widest normalized range "
        "until a cut would leave fewer than k rows; every row is then generalized to its class's ranges "
        "(continuous) and sets (categorical), so each combination is shared by at least k people. "
        "The partitioning runs in the C++ core."
    )
    reference = "LeFevre, DeWitt, Ramakrishnan. Mondrian Multidimensional K-Anonymity. ICDE 2006."
    params = (
        IntParam("k", 5, min=1, max=100, label="k"),
        ChoiceParam("quasi_identifiers", QI_CHOICES[0][1], options=QI_CHOICES, label="table: quasi-identifiers"),
        IntParam("n_rows", 1000, min=100, max=50000, step=100, label="rows (census)"),
        IntParam("seed", 0, min=0, max=100),
    )
    reproducible = ("information_loss", "n_classes", "min_class_size")
    figsize = (11.0, 7.0)

    def compute(self, values, progress):
        table, cont, cat, sensitive = parse_choice(values["quasi_identifiers"])
        df = load_table(table, values["n_rows"], values["seed"])
        qi = cont + cat
        is_continuous_map = {c: c in cont for c in qi}
        if values["k"] > len(df):
            raise ValueError(f"k ({values['k']}) is larger than the table ({len(df)} rows)")
        mondrian = Mondrian(k=values["k"])
        out = mondrian.anonymize(df, qi, sensitive, is_continuous_map)
        progress(1, len(K_GRID) + 1)
        sizes = out.groupby(qi, observed=True).size()
        losses = []
        for i, k in enumerate(K_GRID):
            m = Mondrian(k=min(k, len(df)))
            m.anonymize(df, qi, sensitive, is_continuous_map)
            losses.append(float(m.information_loss_))
            progress(i + 2, len(K_GRID) + 1)
        result = {
            "k": values["k"],
            "rows": len(df),
            "n_classes": int(len(sizes)),
            "min_class_size": int(sizes.min()),
            "mean_class_size": float(sizes.mean()),
            "information_loss": float(mondrian.information_loss_),
            "k_grid": K_GRID,
            "information_loss_curve": losses,
        }
        jx, jy = qi.index(cont[0]), qi.index(cont[1])
        data = {
            "x": df[cont[0]].to_numpy(float),
            "y": df[cont[1]].to_numpy(float),
            "names": (cont[0], cont[1]),
            "lows": mondrian.partition_lows_[:, [jx, jy]],
            "highs": mondrian.partition_highs_[:, [jx, jy]],
            "pid": mondrian.partition_ids_,
            "class_sizes": sizes.to_numpy(),
            "table": out.head(8).astype(str),
            "original": df.head(8),
        }
        return result, data

    def draw(self, fig, result, data):
        from matplotlib.patches import Rectangle

        grid = fig.add_gridspec(2, 3, height_ratios=[1.25, 1.0], hspace=0.45, wspace=0.35)
        ax = fig.add_subplot(grid[0, 0:2])
        ax.scatter(data["x"], data["y"], c=data["pid"] % 20, cmap="tab20", s=6, alpha=0.7)
        for (x0, y0), (x1, y1) in zip(data["lows"], data["highs"]):
            ax.add_patch(Rectangle((x0, y0), max(x1 - x0, 1e-9), max(y1 - y0, 1e-9), fill=False, lw=0.6, ec="k", alpha=0.6))
        ax.set_xlabel(data["names"][0])
        ax.set_ylabel(data["names"][1])
        ax.set_title(f"{result['n_classes']} equivalence classes (k={result['k']})", fontsize=9)
        ax2 = fig.add_subplot(grid[0, 2])
        ax2.hist(data["class_sizes"], bins=np.arange(data["class_sizes"].min(), data["class_sizes"].max() + 2) - 0.5)
        ax2.axvline(result["k"] - 0.5, color="r", ls="--", lw=1)
        ax2.set_xlabel("class size")
        ax2.set_ylabel("classes")
        ax2.set_title("class sizes (all ≥ k)", fontsize=9)
        ax3 = fig.add_subplot(grid[1, 2])
        ax3.plot(result["k_grid"], result["information_loss_curve"], marker="o")
        ax3.axvline(result["k"], color="r", ls="--", lw=1)
        ax3.set_xscale("log")
        ax3.minorticks_off()
        ax3.set_xticks(result["k_grid"])
        ax3.set_xticklabels([str(k) for k in result["k_grid"]])
        ax3.set_xlabel("k")
        ax3.set_ylabel("NCP information loss")
        ax3.set_title("information loss vs k", fontsize=9)
        ax4 = fig.add_subplot(grid[1, 0:2])
        ax4.axis("off")
        tab = data["table"]
        t = ax4.table(cellText=tab.values.tolist(), colLabels=list(tab.columns), loc="center", fontsize=7)
        t.auto_set_font_size(False)
        t.set_fontsize(7)
        ax4.set_title("generalized table (first rows)", fontsize=9, y=1.02)

    def code(self, v):
        table, cont, cat, sensitive = parse_choice(v["quasi_identifiers"])
        qi = cont + cat
        if table == "census":
            load = f"from aijack_lab.datasets.tables import make_census_like\n\ndf = make_census_like({v['n_rows']}, seed={v['seed']})"
        else:
            load = "from aijack_lab.datasets.tables import load_diabetes_frame\n\ndf = load_diabetes_frame()"
        cmap = "{" + ", ".join(f"{c!r}: {c in cont}" for c in qi) + "}"
        return f"""\
from aijack_lab.defense.kanonymity import Mondrian
{load}

feature_columns = {qi!r}
sensitive_column = {sensitive!r}
is_continuous_map = {cmap}

mondrian = Mondrian(k={v['k']})
df_ignore_unused_features = mondrian.anonymize(df, feature_columns, sensitive_column, is_continuous_map)

classes = df_ignore_unused_features.groupby(feature_columns, observed=True).size()
n_classes = len(classes)
min_class_size = int(classes.min())
information_loss = mondrian.information_loss_
print(df_ignore_unused_features.head())
print(f"{{n_classes}} classes, smallest {{min_class_size}}, information loss {{information_loss:.3f}}")
"""
