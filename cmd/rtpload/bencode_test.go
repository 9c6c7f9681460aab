package main

import (
	"errors"
	"reflect"
	"testing"
)

func TestBencodeRoundTrip(t *testing.T) {
	in := map[string]any{
		"command": "offer", "call-id": "c1", "n": int64(-42),
		"flags": []any{"trust-address", int64(7)}, "nested": map[string]any{"a": "b"},
	}
	b, err := bencode(nil, in)
	if err != nil {
		t.Fatal(err)
	}
	want := "d7:call-id2:c17:command5:offer5:flagsl13:trust-addressi7ee1:ni-42e6:nestedd1:a1:bee"
	if string(b) != want {
		t.Fatalf("bencode = %s, want %s", b, want)
	}
	out, rest, err := bdecode(append(b, "tail"...))
	if err != nil {
		t.Fatal(err)
	}
	if string(rest) != "tail" || !reflect.DeepEqual(out, in) {
		t.Fatalf("bdecode = %#v rest %q, want %#v", out, rest, in)
	}
}

func TestBdecodeRejects(t *testing.T) {
	deep := ""
	for range maxBencodeDepth + 2 {
		deep += "l"
	}
	for name, in := range map[string]string{
		"empty": "", "unterminated int": "i42", "bad int": "i4x2e", "long string": "10:abc",
		"unterminated list": "l1:a", "int key": "di1e1:ae", "stray": "x", "too deep": deep,
	} {
		t.Run(name, func(t *testing.T) {
			if _, _, err := bdecode([]byte(in)); !errors.Is(err, errBencode) {
				t.Fatalf("bdecode(%q) error = %v, want errBencode", in, err)
			}
		})
	}
}

func TestSDPAudioPort(t *testing.T) {
	port, err := sdpAudioPort("v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 30008 RTP/AVP 0\r\n")
	if err != nil || port != 30008 {
		t.Fatalf("sdpAudioPort = %d, %v", port, err)
	}
	if _, err := sdpAudioPort("v=0\r\nm=video 5 RTP/AVP 96\r\n"); err == nil {
		t.Fatal("no audio line: want an error")
	}
}
