package media

// defaultClockRate is the RTP clock rate used for jitter when none has been
// set for a payload type.
const defaultClockRate = 8000

// staticClockRates holds the RTP clock rates of the static payload types of
// RFC 3551 §6 (Tables 4 and 5). Payload type 9 (G.722) uses 8000 although it
// samples at 16 kHz (RFC 3551 §4.5.2). Unassigned and dynamic payload types
// (96-127, which include telephone-event, RFC 4733) are 0 here and fall back
// to defaultClockRate unless [Leg.SetClockRate] maps them.
var staticClockRates = [128]uint32{
	0:  8000,  // PCMU
	3:  8000,  // GSM
	4:  8000,  // G723
	5:  8000,  // DVI4
	6:  16000, // DVI4
	7:  8000,  // LPC
	8:  8000,  // PCMA
	9:  8000,  // G722
	10: 44100, // L16 stereo
	11: 44100, // L16 mono
	12: 8000,  // QCELP
	13: 8000,  // CN
	14: 90000, // MPA
	15: 8000,  // G728
	16: 11025, // DVI4
	17: 22050, // DVI4
	18: 8000,  // G729
	25: 90000, // CelB
	26: 90000, // JPEG
	28: 90000, // nv
	31: 90000, // H261
	32: 90000, // MPV
	33: 90000, // MP2T
	34: 90000, // H263
}
