package reply_test

import (
	"context"
	"fmt"
	"time"

	"github.com/iotjobs/iotjobs/domain/reply"
)

// One request in flight: register before sending, let the subscriber
// deliver the reply by token, wait with a deadline.
func ExampleTable() {
	var replies reply.Table[string, string]

	token := reply.NewToken()
	w, ok := replies.Register(token)
	if !ok {
		fmt.Println("token in use")
		return
	}
	// ... publish the request carrying token; the reply arrives on another
	// goroutine, which hands it over by its clientToken:
	go replies.Deliver(token, `{"clientToken":"…","execution":{"jobId":"j1"}}`)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	body, err := w.Wait(ctx)
	fmt.Println(body, err)

	// A reply nobody waits for (late, duplicate or unknown) is dropped.
	fmt.Println(replies.Deliver(token, "again"), replies.Dropped(), replies.Len())
	// Output:
	// {"clientToken":"…","execution":{"jobId":"j1"}} <nil>
	// false 1 0
}

// A wait whose context ends removes its entry: nothing leaks.
func ExampleWait_Wait_timeout() {
	var replies reply.Table[string, string]
	w, _ := replies.Register("t1")

	ctx, cancel := context.WithTimeout(context.Background(), 0)
	defer cancel()
	_, err := w.Wait(ctx)
	fmt.Println(err, replies.Len())
	// Output: context deadline exceeded 0
}

func ExampleNewToken() {
	tok := reply.NewToken()
	fmt.Println(len(tok), len(tok) == reply.TokenLength)
	// Output: 22 true
}
