// Package prof holds in-process Go benchmarks of rackboot's hot paths, for
// profiling without perf: the proxy-DHCP socket loop, TFTP storms (with
// and without loss, at several retransmission timeouts), iPXE script
// requests and the registry writes they cause. They are not part of the
// comparison with the peers (bench/run.sh is); they explain its figures.
//
//	go test -run '^$' -bench DHCP -cpuprofile cpu.out -benchmem ./bench/prof
//	go tool pprof -top -nodecount 40 prof.test cpu.out
package prof
