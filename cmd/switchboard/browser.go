package main

import (
	"github.com/switchboard/switchboard/sip"
	"github.com/switchboard/switchboard/web"
)

// mountBrowser serves what browsers use on web.listen, beside the API: the
// phone page at / and SIP over WebSocket at /ws (same origin as the page,
// or one of web.allowed_origins).
func mountBrowser(webSrv *web.Server, sipSrv *sip.Server, domain string) error {
	phone, err := web.PhoneHandler(web.PhoneConfig{Domain: domain})
	if err != nil {
		return err
	}
	webSrv.Handle("GET /{$}", phone)
	webSrv.Handle("GET /phone/", phone)
	webSrv.Handle("GET /ws", webSrv.CheckOrigin(sipSrv.WebSocketHandler()))
	return nil
}
