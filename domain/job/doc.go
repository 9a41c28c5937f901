// Package job is the pure model of AWS IoT Jobs as a device sees it: job
// executions and their statuses, the transition rules, the request, reply and
// notification bodies of the MQTT protocol with their exact JSON names, the
// validation AWS applies to them, and the rejected replies as one error type.
//
// It imports only the standard library. Decoding is tolerant where AWS's
// documentation and service disagree: timestamps are kept as the number sent,
// a job document sent as a JSON string holding an object is unwrapped, and
// expectedVersion and versionNumber are accepted as numbers or quoted numbers.
package job
