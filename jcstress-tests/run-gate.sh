#!/usr/bin/env bash
# The jcstress gate: builds the harness jar, runs every harness and broken twin, and fails when
#   - the jar does not build;
#   - a harness in dev.agentrunner.jcstress shows a FORBIDDEN outcome, errors, or has no samples;
#   - a twin in dev.agentrunner.jcstress.twins never showed its bad (Interesting) outcome;
#   - an expected test is missing from the results (or jcstress ran none at all).
#
# Usage (from anywhere):  bash jcstress-tests/run-gate.sh
# Environment:
#   JCSTRESS_MVN_ARGS  extra mvn arguments, e.g. "-DbuildDir=target-ci" (default: none, so the
#                      jar lands in jcstress-tests/target/jcstress.jar)
#   JCSTRESS_ARGS      jcstress options (default below: quick preset, shortened, ~4-5 min on 2 cores)
#   JCSTRESS_TESTS     test regexp (default: every harness and twin)
#   JCSTRESS_TIMEOUT   seconds before the run is declared hung (default 900)
#   JCSTRESS_SKIP_BUILD=1  reuse the jar already built
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"

mvn_args="${JCSTRESS_MVN_ARGS:-}"
# quick = 1 normal + 1 stress fork per compilation mode; 3 x 150 ms iterations instead of
# 5 x 200 ms keeps each test near 30 s on 2 cores (all 13 near 6.5 minutes) while the twins
# still show their bugs thousands of times.
jcstress_args="${JCSTRESS_ARGS:--m quick -iters 3 -time 150}"
tests="${JCSTRESS_TESTS:-^dev\.agentrunner\.jcstress\.}"
run_timeout="${JCSTRESS_TIMEOUT:-900}"

# The floor of what must run; anything else jcstress lists is required as well.
required=(
  dev.agentrunner.jcstress.RunIdRaceTest
  dev.agentrunner.jcstress.ClaimRaceTest
  dev.agentrunner.jcstress.SerialKeyClaimTest
  dev.agentrunner.jcstress.AgentStatsSnapshotTest
  dev.agentrunner.jcstress.SubmitCloseRaceTest
  dev.agentrunner.jcstress.ScheduleFireUpdateTest
  dev.agentrunner.jcstress.ScheduleDoubleFireTest
  dev.agentrunner.jcstress.PermitsRaceTest
  dev.agentrunner.jcstress.PermitPlacesRaceTest
  dev.agentrunner.jcstress.AgentStatsStripesTest
  dev.agentrunner.jcstress.twins.MaxIdReadBackTwinTest
  dev.agentrunner.jcstress.twins.UnconditionalClaimTwinTest
  dev.agentrunner.jcstress.twins.NullLockSerialGateTwinTest
  dev.agentrunner.jcstress.twins.PlainFieldsAgentStatsTwinTest
  dev.agentrunner.jcstress.twins.NullLockFireUpdateTwinTest
  dev.agentrunner.jcstress.twins.NullLockDoubleFireTwinTest
  dev.agentrunner.jcstress.twins.CheckThenTakePermitsTwinTest
  dev.agentrunner.jcstress.twins.CheckThenTakePlacesTwinTest
  dev.agentrunner.jcstress.twins.StripeByStripeSumTwinTest
)

fail() {
  echo "jcstress gate: FAIL: $*" >&2
  exit 1
}

# ---- a JDK >= 21: jcstress forks run on the launching JVM's java.home ----
java_major() {
  "$1/bin/java" -XshowSettings:properties -version 2>&1 \
    | awk -F'= ' '/java.specification.version/ { v = $2; sub(/^1\./, "", v); print v + 0; exit }'
}

find_jdk() {
  local candidates=() c best="" best_v=0 v
  [[ -n "${JAVA_HOME:-}" ]] && candidates+=("$JAVA_HOME")
  if command -v java >/dev/null 2>&1; then
    candidates+=("$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")")
  fi
  for c in /usr/lib/jvm/* /opt/java/* /opt/jdk*; do
    [[ -d "$c" ]] && candidates+=("$c")
  done
  for c in "${candidates[@]}"; do
    [[ -x "$c/bin/java" && -x "$c/bin/javac" ]] || continue
    v="$(java_major "$c" || true)"
    if [[ -n "$v" && "$v" -ge 21 && "$v" -gt "$best_v" ]]; then
      best="$c"
      best_v="$v"
    fi
  done
  [[ -n "$best" ]] || return 1
  echo "$best"
}

jdk="$(find_jdk)" || fail "no JDK >= 21 found (looked at JAVA_HOME, java on PATH, /usr/lib/jvm/*)"
java="$jdk/bin/java"
echo "jcstress gate: JDK $jdk (Java $(java_major "$jdk"))"

build_dir=target
if [[ " $mvn_args " =~ [[:space:]]-DbuildDir=([^[:space:]]+) ]]; then
  build_dir="${BASH_REMATCH[1]}"
fi
jar="$here/$build_dir/jcstress.jar"

# ---- build ----
if [[ "${JCSTRESS_SKIP_BUILD:-0}" != 1 ]]; then
  echo "jcstress gate: building $jar"
  # Maven itself may run on any JDK: the root pom's toolchain compiles on a JDK >= 21.
  # shellcheck disable=SC2086 # extra args are meant to split
  mkdir -p "$here/$build_dir"
  build_log="$here/$build_dir/jcstress-build.log"
  if ! (cd "$root" && mvn -B -q -pl jcstress-tests -am package -DskipTests $mvn_args) \
      >"$build_log" 2>&1; then
    tail -n 40 "$build_log" >&2
    fail "the jcstress jar did not build (log: $build_log)"
  fi
fi
[[ -f "$jar" ]] || fail "no jar at $jar (wrong -DbuildDir?)"

report_dir="$here/$build_dir/jcstress-report"
rm -rf "$report_dir"
mkdir -p "$report_dir"
output="$report_dir/output.txt"

# --enable-native-access: jcstress binds threads to CPUs through JNA; say so, so that no fork
# prints the restricted-method warning into every report.
native=(--enable-native-access=ALL-UNNAMED)

# ---- what should run ----
mapfile -t listed < <(cd "$report_dir" && "$java" "${native[@]}" -jar "$jar" -l -t "$tests" \
  | grep -E '^dev\.agentrunner\.jcstress\.' || true)
declare -A expected=()
for t in "${listed[@]}"; do expected["$t"]=1; done
if [[ "$tests" == '^dev\.agentrunner\.jcstress\.' ]]; then
  for t in "${required[@]}"; do expected["$t"]=1; done
fi
[[ ${#expected[@]} -gt 0 ]] || fail "no jcstress test matches $tests"

# ---- run ----
echo "jcstress gate: running ${#expected[@]} tests: jcstress $jcstress_args -t '$tests'"
start=$(date +%s)
rc=0
# shellcheck disable=SC2086 # jcstress_args is meant to split
(cd "$report_dir" && timeout --kill-after=30 "$run_timeout" "$java" "${native[@]}" -jar "$jar" \
  -v -jvmArgsPrepend "${native[*]}" $jcstress_args -t "$tests" -r "$report_dir" \
  >"$output" 2>&1) || rc=$?
echo "jcstress gate: jcstress exited $rc after $(( $(date +%s) - start )) s; output in $output," \
  "HTML report in $report_dir/index.html"
[[ $rc -eq 124 || $rc -eq 137 ]] && fail "jcstress did not finish within $run_timeout s"
if grep -q 'No matching tests' "$output"; then
  fail "jcstress ran no test (No matching tests)"
fi

# ---- parse "RUN RESULTS": one block per test, its status, then its table of outcomes ----
# Emits: TEST <name> <status>  /  ROW <name> <expect> <samples> <result...>
parsed="$report_dir/parsed.txt"
awk '
  /^RUN RESULTS:/ { on = 1; next }
  !on { next }
  /^\.+ \[[A-Z_ ]+\] / {
    status = $0; sub(/^\.+ \[/, "", status); sub(/\].*$/, "", status)
    name = $NF; print "TEST", name, status; next
  }
  name != "" {
    # a row: RESULT (may hold spaces) SAMPLES FREQ EXPECT DESCRIPTION
    for (i = 3; i < NF; i++) {
      if ($i ~ /%$/ && $(i + 1) ~ /^(Acceptable|Forbidden|Interesting|Unknown)$/) {
        samples = $(i - 1); gsub(/,/, "", samples)
        if (samples !~ /^[0-9]+$/) break
        result = $1; for (j = 2; j <= i - 2; j++) result = result " " $j
        print "ROW", name, $(i + 1), samples, result
        break
      }
    }
  }
' "$output" >"$parsed"

# ---- judge ----
passed=0
failed=0
declare -A seen=()
while read -r name; do
  seen["$name"]=1
  status="$(awk -v n="$name" '$1 == "TEST" && $2 == n { s = $3 } END { print s }' "$parsed")"
  read -r samples forbidden interesting outcomes < <(awk -v n="$name" '
    $1 == "ROW" && $2 == n {
      total += $4
      if ($3 == "Forbidden") forb += $4
      if ($3 == "Interesting") intr += $4
      if ($4 > 0) {
        r = ""; for (j = 5; j <= NF; j++) r = r (j > 5 ? " " : "") $j
        gsub(/ /, "", r)
        list = list (list == "" ? "" : " ") "[" r "]=" $4 (($3 == "Acceptable") ? "" : "(" $3 ")")
      }
    }
    END { printf "%d %d %d %s\n", total, forb, intr, (list == "" ? "-" : list) }
  ' "$parsed")
  short="${name#dev.agentrunner.jcstress.}"
  verdict=OK
  why=""
  if [[ "$forbidden" -gt 0 ]]; then
    verdict=FAIL; why="FORBIDDEN outcome seen $forbidden times"
  elif [[ "$status" != OK ]]; then
    verdict=FAIL; why="jcstress status $status"
  elif [[ "$samples" -eq 0 ]]; then
    verdict=FAIL; why="no samples"
  elif [[ "$name" == dev.agentrunner.jcstress.twins.* ]]; then
    if [[ "$interesting" -eq 0 ]]; then
      verdict=FAIL; why="the bug was never observed: this harness shape cannot see it"
    else
      why="bug seen $interesting times"
    fi
  fi
  printf '%-4s %-40s samples=%-11s %s%s\n' "$verdict" "$short" "$samples" "$outcomes" \
    "${why:+  <- $why}"
  if [[ "$verdict" == OK ]]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
done < <(awk '$1 == "TEST" { print $2 }' "$parsed" | sort -u)

for t in "${!expected[@]}"; do
  if [[ -z "${seen[$t]:-}" ]]; then
    printf '%-4s %-40s not in the results (not run, or skipped by jcstress)\n' FAIL \
      "${t#dev.agentrunner.jcstress.}"
    failed=$((failed + 1))
  fi
done

echo "jcstress: $passed passed, $failed failed"
if [[ $failed -gt 0 ]]; then
  fail "$failed of $((passed + failed)) jcstress tests failed; see $output"
fi
if [[ $rc -ne 0 ]]; then
  fail "jcstress exited $rc; see $output"
fi
echo "jcstress gate: OK"
