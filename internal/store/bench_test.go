package store

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard/switchboard/internal/cputime"
)

// benchBindings makes a store with 1000 users and returns 10,000 bindings
// spread over them: the benchmarks re-register them in turn, as refreshes
// do in steady state.
func benchBindings(b *testing.B) (*Store, []Binding) {
	b.Helper()
	s := openTest(b)
	users := make([]User, 1000)
	for i := range users {
		users[i] = User{Name: fmt.Sprint(10000 + i), Realm: "switchboard.local"}
	}
	if err := s.SyncConfigUsers(context.Background(), users); err != nil {
		b.Fatal(err)
	}
	bs := make([]Binding, 10000)
	for i := range bs {
		bs[i] = testBinding(users[i%len(users)].Name, i)
	}
	return s, bs
}

// benchStart is the state a benchmark's figures are computed from.
type benchStart struct {
	stats WriteStats
	cpu   time.Duration
}

func startBench(b *testing.B, s *Store) benchStart {
	b.ResetTimer()
	return benchStart{stats: s.WriteStats(), cpu: cputime.Process()}
}

// report adds throughput, CPU time per operation (of the whole process, all
// cores: what a REGISTER costs the machine in storage work) and, for writes,
// how many operations shared a commit.
func (st benchStart) report(b *testing.B, s *Store) {
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
	if cpu := cputime.Process() - st.cpu; cpu > 0 {
		b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
	}
	after := s.WriteStats()
	if commits := after.Commits - st.stats.Commits; commits > 0 {
		b.ReportMetric(float64(after.Requests-st.stats.Requests)/float64(commits), "ops/commit")
	}
}

// BenchmarkApplyBindingsSerial is one caller at a time: every upsert pays
// for its own commit.
func BenchmarkApplyBindingsSerial(b *testing.B) {
	s, bs := benchBindings(b)
	ctx := context.Background()
	i := 0
	st := startBench(b, s)
	for b.Loop() {
		bd := bs[i%len(bs)]
		bd.CSeq++
		bd.Expires = time.Now().Add(time.Hour)
		if err := s.ApplyBindings(ctx, []Binding{bd}, nil); err != nil {
			b.Fatal(err)
		}
		i++
	}
	st.report(b, s)
}

// BenchmarkApplyBindingsParallel is many REGISTER transactions at once, one
// binding upsert each; p is the number of callers per core.
func BenchmarkApplyBindingsParallel(b *testing.B) {
	for _, p := range []int{1, 8, 32, 128} {
		b.Run(fmt.Sprintf("p=%d", p), func(b *testing.B) {
			s, bs := benchBindings(b)
			ctx := context.Background()
			var next atomic.Int64
			b.SetParallelism(p)
			st := startBench(b, s)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					bd := bs[int(next.Add(1))%len(bs)]
					bd.CSeq++
					bd.Expires = time.Now().Add(time.Hour)
					if err := s.ApplyBindings(ctx, []Binding{bd}, nil); err != nil {
						b.Error(err)
						return
					}
				}
			})
			st.report(b, s)
		})
	}
}

// BenchmarkApplyBindingsOpenLoop offers a fixed rate of REGISTERs, each
// in its own goroutine as a SIP server handles transactions, one binding
// upsert each: the load the registrar is sized for. ns/op is the arrival
// interval; cpu-µs/op is what each costs the machine, p50/p99 the time a
// REGISTER waits for its commit.
func BenchmarkApplyBindingsOpenLoop(b *testing.B) {
	for _, rate := range []int{2_000, 10_000, 20_000} {
		b.Run(fmt.Sprintf("rate=%d", rate), func(b *testing.B) {
			s, bs := benchBindings(b)
			ctx := context.Background()
			interval := time.Second / time.Duration(rate)
			lat := make([]time.Duration, b.N)
			var wg sync.WaitGroup
			st := startBench(b, s)
			start := time.Now()
			for i := range b.N {
				// Absolute due times: a late sleep is made up by a burst.
				if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
					time.Sleep(d)
				}
				bd := bs[i%len(bs)]
				bd.CSeq++
				bd.Expires = time.Now().Add(time.Hour)
				wg.Go(func() {
					t0 := time.Now()
					if err := s.ApplyBindings(ctx, []Binding{bd}, nil); err != nil {
						b.Error(err)
					}
					lat[i] = time.Since(t0)
				})
			}
			wg.Wait()
			st.report(b, s)
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}

// BenchmarkUser is the digest-authentication lookup done per request.
func BenchmarkUser(b *testing.B) {
	s, _ := benchBindings(b)
	ctx := context.Background()
	var next atomic.Int64
	st := startBench(b, s)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.User(ctx, fmt.Sprint(10000+next.Add(1)%1000)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	st.report(b, s)
}
