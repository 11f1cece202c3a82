#!/bin/sh
# ipmi_sim chassis_control program for TestIPMISim (docs/bmc-groundwork.md
# §1.2): "chassis.sh DIR get power boot…" prints "power:1" lines,
# "chassis.sh DIR set power 1 …" stores each value in DIR and appends it to
# DIR/log.
dir=$1; shift
op=$1; shift
case "$op" in
get) for k in "$@"; do
       case $k in
       power) echo "power:$(cat "$dir/power" 2>/dev/null || echo 0)";;
       boot) echo "boot:$(cat "$dir/boot" 2>/dev/null || echo none)";;
       esac
     done;;
set) while [ $# -ge 2 ]; do printf '%s\n' "$2" > "$dir/$1"; echo "$1 $2" >> "$dir/log"; shift 2; done;;
esac
