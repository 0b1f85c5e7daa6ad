package zmq

import (
	"testing"
	"time"
)

func TestPubWanted(t *testing.T) {
	pub := NewPub(Options{})
	defer pub.Close()
	if err := pub.Listen("tcp://127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if pub.Wanted([]byte("click")) {
		t.Fatal("wanted with no subscriber")
	}
	sub := NewSub(Options{})
	defer sub.Close()
	if err := sub.Subscribe("cl"); err != nil {
		t.Fatal(err)
	}
	if err := sub.Dial("tcp://" + pub.Addrs()[0].String()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !pub.Wanted([]byte("click")) {
		if time.Now().After(deadline) {
			t.Fatal("the subscription to cl never made click wanted")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if pub.Wanted([]byte("impression")) || pub.Wanted([]byte("c")) {
		t.Fatal("a topic outside the subscription is wanted")
	}
}
