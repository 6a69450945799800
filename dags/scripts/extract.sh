#!/bin/sh
# extract.sh DAY ROWS: writes ROWS rows of deterministic sales data and prints where they are.
set -eu
day=$1
rows=$2
dir=${TMPDIR:-/tmp}/vigil-example
mkdir -p "$dir"
path="$dir/sales-$day.csv"
awk -v n="$rows" 'BEGIN { print "order_id,price"; for (i = 1; i <= n; i++) printf "%d,%.2f\n", i, 5 + (i * 37 % 100) / 4 }' > "$path"
echo "extracted $rows rows to $path" >&2
printf '{"day": "%s", "rows": %d, "path": "%s"}\n' "$day" "$rows" "$path"
