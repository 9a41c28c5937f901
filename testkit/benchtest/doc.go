// Package benchtest measures the SDK's performance, for `iotjobs bench`
// and the benchmarks: the request round trip over a real broker against
// raw paho (RoundTrip), one job lifecycle through the fake service on the
// in-memory broker (Lifecycle) and a fleet of things in one process
// (Scale). docs/performance.md explains the figures.
//
// Every measurement is a plain timing loop run from Go code, so that one
// program can run them side by side and print ratios measured in one run.
package benchtest
