package media

import "errors"

// ErrNoPorts is returned by [Relay.NewSession] when no free RTP/RTCP port pair
// is left in the configured range (every pair is allocated or could not be
// bound).
var ErrNoPorts = errors.New("media: no free relay ports")

// ErrClosed is returned by [Relay.NewSession] after [Relay.Close].
var ErrClosed = errors.New("media: relay closed")
