package dhcp

import (
	"flag"
	"testing"
)

// fuzzMinimize is the budget for minimizing one new input of FuzzReply and
// FuzzFastPath when the run sets no -fuzzminimizetime. Their seeds are
// captured DHCP packets of 300 to 600 bytes, and minimizing an input of n
// bytes takes O(n²) executions: even at 3 s per input (the go command's
// default is 60 s) FuzzReply did 100 executions in 6 s and FuzzFastPath
// 4,824 in 60 s. The runs went into minimizing, as profiles' FuzzLoad did.
const fuzzMinimize = "100x"

// limitMinimizing sets -test.fuzzminimizetime to fuzzMinimize unless the
// command line set it.
func limitMinimizing(f *testing.F) {
	fl := flag.Lookup("test.fuzzminimizetime")
	if fl == nil {
		return
	}
	set := false
	flag.Visit(func(v *flag.Flag) { set = set || v.Name == fl.Name })
	if !set {
		if err := fl.Value.Set(fuzzMinimize); err != nil {
			f.Fatal(err)
		}
	}
}
