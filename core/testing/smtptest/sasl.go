package smtptest

import (
	"errors"
	"strings"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// go-sasl ships PLAIN but no server side for LOGIN or XOAUTH2, which the
// notify plugin speaks to Office 365 and older relays; these two are just
// enough to check what a client sends.

// loginServer is the server side of AUTH LOGIN: it asks for the username and
// then the password, each base64-encoded by the transport.
type loginServer struct {
	check    func(username, password string) error
	username string
	step     int
}

func (s *loginServer) Next(response []byte) ([]byte, bool, error) {
	switch s.step {
	case 0:
		s.step++
		// Some clients put the username in the initial response.
		if len(response) > 0 {
			s.username = string(response)
			s.step++
			return []byte("Password:"), false, nil
		}
		return []byte("Username:"), false, nil
	case 1:
		s.username = string(response)
		s.step++
		return []byte("Password:"), false, nil
	case 2:
		s.step++
		return nil, true, s.check(s.username, string(response))
	}
	return nil, false, errors.New("unexpected response after AUTH LOGIN completed")
}

// xoauth2Server is the server side of Google's and Microsoft's XOAUTH2: a
// single initial response "user=<name>\x01auth=Bearer <token>\x01\x01".
type xoauth2Server struct {
	check func(username, token string) error
	asked bool
}

func (s *xoauth2Server) Next(response []byte) ([]byte, bool, error) {
	if response == nil && !s.asked {
		s.asked = true
		return []byte{}, false, nil
	}
	var user, token string
	found := 0
	for _, field := range strings.Split(string(response), "\x01") {
		if v, ok := strings.CutPrefix(field, "user="); ok {
			user = v
			found++
		} else if v, ok := strings.CutPrefix(field, "auth=Bearer "); ok {
			token = v
			found++
		}
	}
	if found != 2 || !strings.HasSuffix(string(response), "\x01\x01") {
		return nil, false, &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 5, 2}, Message: "Malformed XOAUTH2 response"}
	}
	return nil, true, s.check(user, token)
}

var (
	_ sasl.Server = (*loginServer)(nil)
	_ sasl.Server = (*xoauth2Server)(nil)
)
