package sip

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/switchboard/switchboard/internal/store"
)

// SetupBuckets are the upper bounds, in seconds, of the call setup time
// histogram.
var SetupBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// Metrics is a snapshot of the signalling plane's counters since start.
type Metrics struct {
	// Requests counts received requests by method.
	Requests map[string]uint64
	// Responses counts the final responses sent, by request method and
	// class ("2xx" … "6xx").
	Responses map[MethodClass]uint64
	// SetupCounts[i] counts calls whose setup took at most SetupBuckets[i]
	// (not cumulative); the last element counts the slower ones. Setup is
	// from the caller's INVITE to the first 180/183 or answer it gets.
	SetupCounts []uint64
	SetupSum    float64 // seconds
	// Media of ended calls plus the calls in progress, both legs together:
	// packets and bytes the relay received and sent, and packets lost.
	RelayPacketsIn, RelayPacketsOut uint64
	RelayBytesIn, RelayBytesOut     uint64
	RelayLost                       uint64
}

// MethodClass keys Metrics.Responses.
type MethodClass struct{ Method, Class string }

// counters are the live counters behind Metrics.
type counters struct {
	mu        sync.Mutex
	requests  map[string]uint64
	responses map[MethodClass]uint64

	setupMu     sync.Mutex
	setupCounts []uint64
	setupSum    float64

	// Media of ended calls.
	pktIn, pktOut, bytesIn, bytesOut, lost atomic.Uint64
}

func newCounters() *counters {
	return &counters{requests: map[string]uint64{}, responses: map[MethodClass]uint64{},
		setupCounts: make([]uint64, len(SetupBuckets)+1)}
}

// knownMethod keeps the method label's values few: anything else is
// "other".
func knownMethod(m sip.RequestMethod) string {
	switch m {
	case sip.INVITE, sip.ACK, sip.BYE, sip.CANCEL, sip.REGISTER, sip.OPTIONS, sip.INFO, sip.UPDATE,
		sip.PRACK, sip.SUBSCRIBE, sip.NOTIFY, sip.MESSAGE, sip.REFER, sip.PUBLISH:
		return string(m)
	}
	return "other"
}

// track counts req and returns tx wrapped so that its final response is
// counted too.
func (c *counters) track(req *sip.Request, tx sip.ServerTransaction) sip.ServerTransaction {
	m := knownMethod(req.Method)
	c.mu.Lock()
	c.requests[m]++
	c.mu.Unlock()
	if tx == nil {
		return nil
	}
	return &countedTx{ServerTransaction: tx, c: c, method: m}
}

func (c *counters) response(method string, code int) {
	class := "other"
	if code >= 200 && code < 700 {
		class = string(rune('0'+code/100)) + "xx"
	}
	c.mu.Lock()
	c.responses[MethodClass{method, class}]++
	c.mu.Unlock()
}

// countedTx counts the first final response sent in a transaction.
type countedTx struct {
	sip.ServerTransaction
	c       *counters
	method  string
	counted atomic.Bool
}

func (t *countedTx) Respond(res *sip.Response) error {
	if res.StatusCode >= 200 && t.counted.CompareAndSwap(false, true) {
		t.c.response(t.method, res.StatusCode)
	}
	return t.ServerTransaction.Respond(res)
}

func (c *counters) observeSetup(d time.Duration) {
	sec := d.Seconds()
	i := 0
	for i < len(SetupBuckets) && sec > SetupBuckets[i] {
		i++
	}
	c.setupMu.Lock()
	c.setupCounts[i]++
	c.setupSum += sec
	c.setupMu.Unlock()
}

// endedMedia adds the media counters of an ended call.
func (c *counters) endedMedia(legs []store.LegStats) {
	for _, l := range legs {
		c.pktIn.Add(l.PacketsIn)
		c.pktOut.Add(l.PacketsOut)
		c.bytesIn.Add(l.BytesIn)
		c.bytesOut.Add(l.BytesOut)
		c.lost.Add(l.Lost)
	}
}

// Metrics returns the signalling plane's counters.
func (s *Server) Metrics() Metrics {
	c := s.counters
	m := Metrics{Requests: map[string]uint64{}, Responses: map[MethodClass]uint64{}}
	c.mu.Lock()
	for k, v := range c.requests {
		m.Requests[k] = v
	}
	for k, v := range c.responses {
		m.Responses[k] = v
	}
	c.mu.Unlock()
	c.setupMu.Lock()
	m.SetupCounts = append([]uint64(nil), c.setupCounts...)
	m.SetupSum = c.setupSum
	c.setupMu.Unlock()
	m.RelayPacketsIn, m.RelayPacketsOut = c.pktIn.Load(), c.pktOut.Load()
	m.RelayBytesIn, m.RelayBytesOut, m.RelayLost = c.bytesIn.Load(), c.bytesOut.Load(), c.lost.Load()
	for _, ci := range s.Calls() {
		for _, l := range ci.Legs {
			m.RelayPacketsIn += l.Stats.PacketsIn
			m.RelayPacketsOut += l.Stats.PacketsOut
			m.RelayBytesIn += l.Stats.BytesIn
			m.RelayBytesOut += l.Stats.BytesOut
			m.RelayLost += l.Stats.Lost
		}
	}
	return m
}
