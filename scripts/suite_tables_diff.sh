#!/usr/bin/env bash
# Do two revisions give the same tables? Runs the quick suites A-D in simulation at
# REV_A and REV_B (each in its own git worktree, same seeds), exports every table and
# diffs them. Figures (their HTML ids and PDF metadata differ every run) and the
# reproducibility appendix (it names the revision) are left out. A refactoring that
# changes no behaviour shows differences only in the columns that are measured real
# time (the control-plane overhead of the scalability table).
#
#   scripts/suite_tables_diff.sh REV_A REV_B [OUT_DIR]
set -euo pipefail
a=${1:?usage: suite_tables_diff.sh REV_A REV_B [OUT_DIR]}
b=${2:?usage: suite_tables_diff.sh REV_A REV_B [OUT_DIR]}
out=${3:-$(mktemp -d -t suite-tables-XXXX)}
root=$(git rev-parse --show-toplevel)
py="$root/.venv/bin/python"
suites=(control-plane policies scalability heterogeneous)

tables_at() {  # REV DIR
  local rev=$1 dir=$2 wt
  wt=$(mktemp -d -t suite-wt-XXXX)
  git -C "$root" worktree add -q --detach "$wt" "$rev"
  mkdir -p "$dir"
  for s in "${suites[@]}"; do
    (cd "$wt" && SAGETUI_DB="$dir/store.db" "$py" -m sagetui suite run "$s" --mode sim --quick \
        > "$dir/$s.log" 2>&1 \
     && SAGETUI_DB="$dir/store.db" "$py" -m sagetui export --bundle --suite "$s" --format md \
        -o "$dir/$s" >> "$dir/$s.log" 2>&1) || { echo "$rev: suite $s failed, see $dir/$s.log"; exit 1; }
  done
  git -C "$root" worktree remove --force "$wt"
}

tables_at "$a" "$out/a"
tables_at "$b" "$out/b"
status=0
for s in "${suites[@]}"; do
  if diff -r -x '*.html' -x '*.pdf' -x '*.png' -x '*.svg' -x 'reproducibility.*' -x 'index.md' \
       -x 'brief.md' -x '*.log' "$out/a/$s" "$out/b/$s" > "$out/$s.diff"; then
    echo "$s: identical tables"
  else
    echo "$s: $(grep -c '^[<>]' "$out/$s.diff") differing lines ($out/$s.diff)"
    status=1
  fi
done
exit $status
