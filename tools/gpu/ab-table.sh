# Sourced by the A/B check scripts (tools/gpu/*-check.sh): one table of a sweep's rows across the variants of a run.
#   ab_rows LOG          "name shape<TAB>time" per row of a sweep log (no cold rows), sorted
#   ab_join A B          rows of A with B's time appended ("-" where B lacks the row)
#   ab_table DIR KIND V.. "KIND (us): row | V..." from DIR/KIND-V.log for each V that has a log, rows joined on name
ab_rows() { grep -E "^\| [a-z]" "$1" | grep -v "^| name" | grep -v "(cold)" | awk -F'|' '{gsub(/^ +| +$/, "", $2); split($3, s, " ");
  gsub(/ /, "", $4); printf "%s %s\t%s\n", $2, s[1], $4}' | LC_ALL=C sort; }
ab_join() { LC_ALL=C join -t $'\t' -a 1 -e - -o auto "$@"; }
ab_table() {
  local dir=$1 kind=$2; shift 2
  local acc="$dir/$kind.acc" shown=() first=1
  for v in "$@"; do
    [ -s "$dir/$kind-$v.log" ] || continue
    shown+=("$v")
    if [ $first = 1 ]; then ab_rows "$dir/$kind-$v.log" > "$acc"; first=0
    else ab_rows "$dir/$kind-$v.log" | ab_join "$acc" - > "$acc.n"; mv "$acc.n" "$acc"; fi
  done
  echo "$kind (us): row | ${shown[*]}"; [ -f "$acc" ] && tr '\t' '|' < "$acc"
}
