package rolesanywhere_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/keyless-dev/keyless/internal/rolesanywhere"
)

// TestServerDate reads the Date of any answer, a refusal included, and
// fails without one or without an answer.
func TestServerDate(t *testing.T) {
	want := time.Date(2026, 5, 4, 3, 2, 1, 0, time.UTC)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			t.Error("the probe is signed")
		}
		if r.URL.Path == "/nodate/sessions" {
			w.Header()["Date"] = nil // net/http adds none then
		} else {
			w.Header().Set("Date", want.Format(http.TimeFormat))
		}
		w.WriteHeader(http.StatusForbidden)
	}))
	defer srv.Close()
	got, err := rolesanywhere.ServerDate(context.Background(), srv.URL, rolesanywhere.TransportOptions{})
	if err != nil || !got.Equal(want) {
		t.Fatalf("ServerDate = %s, %v; want %s", got, err, want)
	}
	if _, err := rolesanywhere.ServerDate(context.Background(), srv.URL+"/nodate", rolesanywhere.TransportOptions{}); err == nil {
		t.Error("no Date header: no error")
	}
	url := srv.URL
	srv.Close()
	var te *rolesanywhere.TransportError
	if _, err := rolesanywhere.ServerDate(context.Background(), url, rolesanywhere.TransportOptions{}); err == nil {
		t.Error("no server: no error")
	} else if !errors.As(err, &te) {
		t.Errorf("no server: %T %v, want a TransportError", err, err)
	}
}
