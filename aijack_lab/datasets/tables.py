"""Person-level tables for the anonymization examples: a synthetic census-like table and the bundled
diabetes table (scikit-learn, unscaled). Nothing is downloaded.
"""
import numpy as np
import pandas as pd

from ..utils.validation import check_positive_int

JOBS = ("clerk", "nurse", "driver", "teacher", "cook", "engineer", "farmer", "lawyer")
EDUCATION = ("primary", "secondary", "bachelor", "master", "doctorate")
DISEASES = ("flu", "diabetes", "heart", "cancer", "none")


def make_census_like(n_rows: int = 1000, seed: int = 0) -> pd.DataFrame:
    """A census-like table: ``age``, ``income``, ``hours`` (continuous), ``job``, ``education``
    (categorical), ``zip`` (a direct neighbourhood code) and the sensitive ``disease``.

    Columns are correlated the way real census data is (income grows with age and education,
    hours depend on the job), so Mondrian's partitions are not trivial grids.
    """
    n_rows = check_positive_int("n_rows", n_rows)
    rng = np.random.default_rng(seed)
    age = np.clip(rng.normal(42, 13, n_rows), 17, 90).round().astype(np.int64)
    edu_idx = np.minimum(rng.poisson(1.4, n_rows), len(EDUCATION) - 1)
    job_idx = rng.integers(0, len(JOBS), n_rows)
    income = np.exp(9.8 + 0.012 * (age - 17) + 0.18 * edu_idx + rng.normal(0, 0.35, n_rows)).round(-2)
    hours = np.clip(rng.normal(38 + 2 * (job_idx % 3), 7, n_rows), 5, 80).round().astype(np.int64)
    zip_code = rng.choice([10001, 10002, 10003, 20001, 20002, 30001], n_rows)
    p_disease = np.array([0.2, 0.1, 0.1, 0.05, 0.55])
    disease = rng.choice(DISEASES, n_rows, p=p_disease)
    return pd.DataFrame(
        {
            "age": age,
            "income": income,
            "hours": hours,
            "job": np.asarray(JOBS, dtype=object)[job_idx],
            "education": np.asarray(EDUCATION, dtype=object)[edu_idx],
            "zip": zip_code,
            "disease": disease,
        }
    )


def load_diabetes_frame() -> pd.DataFrame:
    """scikit-learn's bundled diabetes table (442 patients) in real units: ``age``, ``sex`` (1/2),
    ``bmi``, ``bp`` and the sensitive ``progression`` (disease progression binned into low/mid/high)."""
    from sklearn.datasets import load_diabetes

    d = load_diabetes(as_frame=True, scaled=False)
    df = d.frame[["age", "sex", "bmi", "bp"]].copy()
    df["age"] = df["age"].astype(np.int64)
    df["sex"] = df["sex"].astype(np.int64).map({1: "F", 2: "M"})
    df["progression"] = pd.cut(d.frame["target"], [0, 100, 200, 1000], labels=["low", "mid", "high"]).astype(str)
    return df
