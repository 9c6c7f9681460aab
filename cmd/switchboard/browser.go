package main

import (
	"github.com/switchboard/switchboard/sip"
	"github.com/switchboard/switchboard/web"
)

// mountBrowser serves what browsers use on web.listen, beside the API: SIP
// over WebSocket at /ws (same origin as the phone page).
func mountBrowser(webSrv *web.Server, sipSrv *sip.Server) {
	webSrv.Handle("GET /ws", sipSrv.WebSocketHandler())
}
