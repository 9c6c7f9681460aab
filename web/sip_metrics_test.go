package web

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

type fakeSignalling SignallingStats

func (f fakeSignalling) SignallingStats() SignallingStats { return SignallingStats(f) }

func TestSignallingCollector(t *testing.T) {
	c := signallingCollector{fakeSignalling{
		Requests:       map[string]uint64{"INVITE": 3},
		Responses:      []ResponseCount{{"INVITE", "4xx", 2}, {"INVITE", "2xx", 1}},
		SetupBuckets:   []float64{0.1, 1},
		SetupCounts:    []uint64{2, 1, 4}, // 4 slower than 1 s
		SetupSum:       12.5,
		RelayPacketsIn: 10, RelayPacketsOut: 9, RelayBytesIn: 1720, RelayBytesOut: 1548, RelayLost: 1,
	}}
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, mf := range mfs {
		got[mf.GetName()] = true
		switch mf.GetName() {
		case "switchboard_call_setup_seconds":
			h := mf.GetMetric()[0].GetHistogram()
			b := h.GetBucket()
			if h.GetSampleCount() != 7 || h.GetSampleSum() != 12.5 || len(b) != 2 ||
				b[0].GetUpperBound() != 0.1 || b[0].GetCumulativeCount() != 2 ||
				b[1].GetUpperBound() != 1 || b[1].GetCumulativeCount() != 3 {
				t.Errorf("histogram %v", h)
			}
		case "switchboard_sip_responses_total":
			if n := len(mf.GetMetric()); n != 2 {
				t.Errorf("%d response series", n)
			}
		case "switchboard_relay_packets_lost_total":
			if v := mf.GetMetric()[0].GetCounter().GetValue(); v != 1 {
				t.Errorf("lost %v", v)
			}
		}
	}
	for _, name := range []string{"switchboard_sip_requests_total", "switchboard_sip_responses_total", "switchboard_call_setup_seconds",
		"switchboard_relay_packets_total", "switchboard_relay_bytes_total", "switchboard_relay_packets_lost_total"} {
		if !got[name] {
			t.Errorf("no %s", name)
		}
	}
}
