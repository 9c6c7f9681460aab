package sip

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
)

// mediaInfo is what the relay needs from one side's SDP.
type mediaInfo struct {
	// RTP is where the side wants its audio; invalid when the stream is on
	// hold with c=0.0.0.0 or the audio line is disabled.
	RTP netip.AddrPort
	// RTCP is from a=rtcp (RFC 3605); invalid when absent (RTP port + 1).
	RTCP netip.AddrPort
	// Codecs are the audio payload format names in order, e.g. PCMU/8000.
	Codecs []string
	// Direction is sendrecv, sendonly, recvonly or inactive.
	Direction string
	// Secure is set for an RTP/SAVP (or SAVPF) stream, whose keys are in
	// Crypto (RFC 4568); only parseSDPSecure accepts one.
	Secure bool
	Crypto []cryptoLine
}

// errSDP reports an offer or answer we cannot anchor.
type errSDP struct{ why string }

func (e *errSDP) Error() string { return "sdp: " + e.why }

// parseSDP reads the first audio stream of body, which must be plain
// RTP/AVP.
func parseSDP(body []byte) (*sdp.SessionDescription, int, mediaInfo, error) {
	return parseSDPMode(body, false)
}

// parseSDPSecure is parseSDP that also accepts RTP/SAVP with SDES keys,
// for the paths that terminate SRTP (see srtp.go).
func parseSDPSecure(body []byte) (*sdp.SessionDescription, int, mediaInfo, error) {
	return parseSDPMode(body, true)
}

func parseSDPMode(body []byte, secure bool) (*sdp.SessionDescription, int, mediaInfo, error) {
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(string(body)); err != nil {
		return nil, 0, mediaInfo{}, &errSDP{why: err.Error()}
	}
	idx := -1
	for i, m := range sd.MediaDescriptions {
		if m.MediaName.Media == "audio" && m.MediaName.Port.Value != 0 {
			idx = i
			break
		}
	}
	if idx < 0 {
		return nil, 0, mediaInfo{}, &errSDP{why: "no audio stream"}
	}
	m := sd.MediaDescriptions[idx]
	var info mediaInfo
	if p := m.MediaName.Protos; len(p) != 2 || p[0] != "RTP" || (p[1] != "AVP" && p[1] != "AVPF") {
		if !secure || len(p) != 2 || p[0] != "RTP" || (p[1] != "SAVP" && p[1] != "SAVPF") {
			return nil, 0, mediaInfo{}, &errSDP{why: "audio transport " + strings.Join(p, "/") + " is not RTP/AVP"}
		}
		info.Secure = true
	}
	conn := m.ConnectionInformation
	if conn == nil {
		conn = sd.ConnectionInformation
	}
	if conn == nil || conn.Address == nil {
		return nil, 0, mediaInfo{}, &errSDP{why: "no connection address"}
	}
	host, _, _ := strings.Cut(conn.Address.Address, "/")
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return nil, 0, mediaInfo{}, &errSDP{why: fmt.Sprintf("connection address %q is not an IP address", host)}
	}
	port := m.MediaName.Port.Value
	if port <= 0 || port > 65535 {
		return nil, 0, mediaInfo{}, &errSDP{why: "bad audio port"}
	}
	if !ip.IsUnspecified() {
		info.RTP = netip.AddrPortFrom(ip.Unmap(), uint16(port))
	}
	info.Direction = "sendrecv"
	rtpmap := map[string]string{}
	for _, a := range append(append([]sdp.Attribute{}, sd.Attributes...), m.Attributes...) {
		switch a.Key {
		case "sendrecv", "sendonly", "recvonly", "inactive":
			info.Direction = a.Key
		case "rtpmap":
			pt, enc, ok := strings.Cut(a.Value, " ")
			if ok {
				rtpmap[pt] = enc
			}
		case "crypto":
			if info.Secure {
				if cl, ok := parseCrypto(a.Value); ok {
					info.Crypto = append(info.Crypto, cl)
				}
			}
		case "rtcp":
			// a=rtcp:<port> [IN IP4 <addr>] (RFC 3605 §2.1)
			f := strings.Fields(a.Value)
			if len(f) == 0 {
				continue
			}
			if p, err := strconv.Atoi(f[0]); err == nil && p > 0 && p < 65536 && info.RTP.IsValid() {
				addr := info.RTP.Addr()
				if len(f) == 4 {
					if x, err := netip.ParseAddr(f[3]); err == nil {
						addr = x
					}
				}
				info.RTCP = netip.AddrPortFrom(addr, uint16(p))
			}
		}
	}
	for _, f := range m.MediaName.Formats {
		name := rtpmap[f]
		if name == "" {
			name = staticPayloads[f]
		}
		if name == "" {
			name = "PT" + f
		}
		info.Codecs = append(info.Codecs, name)
	}
	return &sd, idx, info, nil
}

// staticPayloads names the RFC 3551 static audio payload types that may
// appear without an rtpmap.
var staticPayloads = map[string]string{
	"0": "PCMU/8000", "3": "GSM/8000", "4": "G723/8000", "8": "PCMA/8000",
	"9": "G722/8000", "18": "G729/8000",
}

// rewriteSDP returns body with its audio stream moved to the relay at
// addr:port, so that the far side sends to us (RFC 4566 c= and m=, RFC 3605
// a=rtcp). Codecs, telephone-event and the direction pass through
// unchanged; other streams are declined (port 0) since the relay carries
// one audio stream per call. ICE attributes are dropped: the relay is the
// only candidate. An audio stream held the old way, with c=0.0.0.0
// (RFC 3264 §8.4), stays held: its c= keeps the unspecified address, so the
// far side does not send.
func rewriteSDP(sd *sdp.SessionDescription, audio int, addr netip.Addr, port int, sessionVersion uint64) ([]byte, error) {
	out := *sd
	ipv := "IP4"
	if addr.Is6() && !addr.Is4In6() {
		ipv = "IP6"
	}
	host := addr.Unmap().String()
	out.Origin.Username = "switchboard"
	out.Origin.NetworkType, out.Origin.AddressType, out.Origin.UnicastAddress = "IN", ipv, host
	out.Origin.SessionVersion = sessionVersion
	conn := &sdp.ConnectionInformation{NetworkType: "IN", AddressType: ipv, Address: &sdp.Address{Address: host}}
	out.ConnectionInformation = conn
	out.Attributes = filterAttrs(sd.Attributes)
	out.MediaDescriptions = make([]*sdp.MediaDescription, len(sd.MediaDescriptions))
	for i, m := range sd.MediaDescriptions {
		mm := *m
		if i != audio {
			mm.MediaName.Port = sdp.RangedPort{Value: 0}
			mm.ConnectionInformation = nil
			mm.Attributes = nil
			out.MediaDescriptions[i] = &mm
			continue
		}
		mm.MediaName.Port = sdp.RangedPort{Value: port}
		mm.ConnectionInformation = nil
		if held := heldConnection(sd, m); held != nil {
			mm.ConnectionInformation = held
		}
		attrs := filterAttrs(m.Attributes)
		for j, a := range attrs {
			if a.Key == "rtcp" {
				attrs[j] = sdp.Attribute{Key: "rtcp", Value: fmt.Sprintf("%d IN %s %s", port+1, ipv, host)}
			}
		}
		mm.Attributes = attrs
		out.MediaDescriptions[i] = &mm
	}
	b, err := out.Marshal()
	if err != nil {
		return nil, &errSDP{why: err.Error()}
	}
	return b, nil
}

// heldConnection returns a copy of the connection line of m when it is the
// unspecified address (hold), nil otherwise.
func heldConnection(sd *sdp.SessionDescription, m *sdp.MediaDescription) *sdp.ConnectionInformation {
	conn := m.ConnectionInformation
	if conn == nil {
		conn = sd.ConnectionInformation
	}
	if conn == nil || conn.Address == nil {
		return nil
	}
	host, _, _ := strings.Cut(conn.Address.Address, "/")
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.IsUnspecified() {
		return nil
	}
	return &sdp.ConnectionInformation{NetworkType: "IN", AddressType: conn.AddressType, Address: &sdp.Address{Address: ip.String()}}
}

// filterAttrs drops attributes that describe the far side's transport
// rather than the media: ICE (RFC 8839) and the far side's rtcp-mux offer,
// which the relay does not do on plain RTP legs.
func filterAttrs(in []sdp.Attribute) []sdp.Attribute {
	out := make([]sdp.Attribute, 0, len(in))
	for _, a := range in {
		switch a.Key {
		case "candidate", "ice-ufrag", "ice-pwd", "ice-options", "ice-lite", "end-of-candidates", "remote-candidates", "rtcp-mux":
			continue
		}
		out = append(out, a)
	}
	return out
}
