"""Write the README's "Launch on Binder" badges for the repository and for each tutorial notebook.

The repository slug comes from ``--repo owner/name`` or else from ``git remote get-url origin``
(GitHub remotes, https or ssh). A fork runs:  python tools/binder_badges.py --repo you/aijack_lab
"""
import argparse
import pathlib
import re
import subprocess
import urllib.parse

ROOT = pathlib.Path(__file__).resolve().parents[1]
START, END = "<!-- binder:start -->", "<!-- binder:end -->"
DEFAULT_REPO = "aijack-lab/aijack_lab"
BADGE = "https://mybinder.org/badge_logo.svg"


def repo_from_remote() -> str:
    try:
        url = subprocess.run(["git", "remote", "get-url", "origin"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.strip()
    except (subprocess.CalledProcessError, FileNotFoundError):
        return DEFAULT_REPO
    m = re.search(r"github\.com[:/]([^/]+)/([^/]+?)(?:\.git)?$", url)
    return f"{m.group(1)}/{m.group(2)}" if m else DEFAULT_REPO


def binder_url(repo: str, branch: str = "HEAD", path: str = "") -> str:
    url = f"https://mybinder.org/v2/gh/{repo}/{branch}"
    if path:
        url += "?labpath=" + urllib.parse.quote(path, safe="")
    return url


def badges(repo: str, branch: str = "HEAD") -> str:
    lines = [f"[![Binder]({BADGE})]({binder_url(repo, branch, 'notebooks/00_gallery.ipynb')}) "
             f"the gallery, for `{repo}`", "", "| notebook | launch |", "|---|---|"]
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        rel = f"notebooks/{nb.name}"
        lines.append(f"| `{rel}` | [![Binder]({BADGE})]({binder_url(repo, branch, rel)}) |")
    return "\n".join(lines)


def rewrite(text: str, repo: str, branch: str = "HEAD") -> str:
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{badges(repo, branch)}\n{END}{tail}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", default=None, help="GitHub owner/name (default: from the origin remote)")
    parser.add_argument("--branch", default="HEAD")
    parser.add_argument("--readme", default=str(ROOT / "README.md"))
    args = parser.parse_args()
    path = pathlib.Path(args.readme)
    path.write_text(rewrite(path.read_text(), args.repo or repo_from_remote(), args.branch))


if __name__ == "__main__":
    main()
