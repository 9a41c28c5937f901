package jobtopic_test

import (
	"testing"

	"github.com/iotjobs/iotjobs/domain/jobtopic"
)

var sinkTopic jobtopic.Topic
var sinkString string

func BenchmarkParse(b *testing.B) {
	for _, name := range []string{
		"$aws/things/thing-0001/jobs/notify-next",
		"$aws/things/thing-0001/jobs/firmware-update-42/update/accepted",
	} {
		b.Run(name[len("$aws/things/thing-0001/jobs/"):], func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				t, err := jobtopic.Parse(name)
				if err != nil {
					b.Fatal(err)
				}
				sinkTopic = t
			}
		})
	}
}

func BenchmarkTopicString(b *testing.B) {
	top, err := jobtopic.New("thing-0001", jobtopic.UpdateAccepted, "firmware-update-42")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		sinkString = top.String()
	}
}
