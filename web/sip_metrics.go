package web

import (
	"github.com/prometheus/client_golang/prometheus"
)

// SignallingStats are the signalling plane's counters since start.
type SignallingStats struct {
	// Requests counts received SIP requests by method.
	Requests map[string]uint64
	// Responses counts final responses sent, by request method and class
	// ("2xx" … "6xx").
	Responses []ResponseCount
	// SetupBuckets are the histogram's upper bounds in seconds;
	// SetupCounts[i] counts the calls whose setup fell in bucket i (not
	// cumulative), with one more element for the slower ones.
	SetupBuckets []float64
	SetupCounts  []uint64
	SetupSum     float64
	// Relay traffic of every call, ended or in progress.
	RelayPacketsIn, RelayPacketsOut uint64
	RelayBytesIn, RelayBytesOut     uint64
	RelayLost                       uint64
}

// ResponseCount is one count of SignallingStats.Responses.
type ResponseCount struct {
	Method, Class string
	N             uint64
}

// Signalling reports signalling and relay counters for the metrics. It is
// optional: without it those metrics are absent.
type Signalling interface {
	SignallingStats() SignallingStats
}

var (
	descSIPRequests = prometheus.NewDesc("switchboard_sip_requests_total",
		"SIP requests received, by method.", []string{"method"}, nil)
	descSIPResponses = prometheus.NewDesc("switchboard_sip_responses_total",
		"Final SIP responses sent, by request method and response class.", []string{"method", "class"}, nil)
	descSetup = prometheus.NewDesc("switchboard_call_setup_seconds",
		"Call setup time: from the caller's INVITE to the first ringing, early media or answer it gets.", nil, nil)
	descRelayPackets = prometheus.NewDesc("switchboard_relay_packets_total",
		"RTP/RTCP packets through the media relay, by direction (in: received from phones; out: sent to them).", []string{"direction"}, nil)
	descRelayBytes = prometheus.NewDesc("switchboard_relay_bytes_total",
		"Bytes through the media relay, by direction.", []string{"direction"}, nil)
	descRelayLost = prometheus.NewDesc("switchboard_relay_packets_lost_total",
		"RTP packets lost on the way to the relay, from sequence numbers.", nil, nil)
)

// signallingCollector reads the counters at scrape time.
type signallingCollector struct{ sig Signalling }

func (c signallingCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSIPRequests, descSIPResponses, descSetup, descRelayPackets, descRelayBytes, descRelayLost} {
		ch <- d
	}
}

func (c signallingCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.sig.SignallingStats()
	for m, n := range st.Requests {
		ch <- prometheus.MustNewConstMetric(descSIPRequests, prometheus.CounterValue, float64(n), m)
	}
	for _, r := range st.Responses {
		ch <- prometheus.MustNewConstMetric(descSIPResponses, prometheus.CounterValue, float64(r.N), r.Method, r.Class)
	}
	buckets := make(map[float64]uint64, len(st.SetupBuckets))
	var total uint64
	for i, ub := range st.SetupBuckets {
		if i < len(st.SetupCounts) {
			total += st.SetupCounts[i]
		}
		buckets[ub] = total
	}
	if len(st.SetupCounts) > len(st.SetupBuckets) {
		total += st.SetupCounts[len(st.SetupBuckets)]
	}
	ch <- prometheus.MustNewConstHistogram(descSetup, total, st.SetupSum, buckets)
	ch <- prometheus.MustNewConstMetric(descRelayPackets, prometheus.CounterValue, float64(st.RelayPacketsIn), "in")
	ch <- prometheus.MustNewConstMetric(descRelayPackets, prometheus.CounterValue, float64(st.RelayPacketsOut), "out")
	ch <- prometheus.MustNewConstMetric(descRelayBytes, prometheus.CounterValue, float64(st.RelayBytesIn), "in")
	ch <- prometheus.MustNewConstMetric(descRelayBytes, prometheus.CounterValue, float64(st.RelayBytesOut), "out")
	ch <- prometheus.MustNewConstMetric(descRelayLost, prometheus.CounterValue, float64(st.RelayLost))
}
