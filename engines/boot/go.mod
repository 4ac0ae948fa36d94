// Beam's Python SDK worker boot program, built from its Go module: what the PROCESS environment
// runs on each Flink task manager and Spark executor. go.sum pins every module's hash.
module nsfw-scan/engines/boot

go 1.23

tool github.com/apache/beam/sdks/v2/python/container

require (
	github.com/apache/beam/sdks/v2 v2.62.0 // indirect
	golang.org/x/net v0.33.0 // indirect
	golang.org/x/sys v0.28.0 // indirect
	golang.org/x/text v0.21.0 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20241206012308-a4fef0638583 // indirect
	google.golang.org/grpc v1.67.2 // indirect
	google.golang.org/protobuf v1.36.0 // indirect
)
