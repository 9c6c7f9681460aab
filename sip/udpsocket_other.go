//go:build !linux

package sip

import "net"

// udpSocket is used on Linux only (udpsocket_linux.go); elsewhere package net
// reads and writes the socket.
type udpSocket struct{}

func newUDPSocket(net.PacketConn) *udpSocket { return nil }

func (*udpSocket) ReadFrom([]byte) (int, net.Addr, error) { return 0, nil, net.ErrClosed }

func (*udpSocket) WriteTo([]byte, net.Addr) (int, error, bool) { return 0, nil, false }
