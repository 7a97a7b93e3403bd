package broker

import (
	"google.golang.org/grpc"
	"time"

	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	"github.com/strata-stream/strata/internal/rpcbuf"
	stratav1 "github.com/strata-stream/strata/proto/strata/v1"
)

// MaxRequestBytes bounds a gRPC message; larger requests are refused with
// RESOURCE_EXHAUSTED before they reach a handler.
const MaxRequestBytes = 64 << 20

// NewGRPCServer returns a gRPC server with the broker's services, the
// health service (serving once the broker is ready) and reflection. opts
// must not replace the codec: ProduceStream decodes its requests in
// place through rpcbuf's (pooledProduceRequest), which no other codec
// knows.
func (s *Server) NewGRPCServer(opts ...grpc.ServerOption) (*grpc.Server, *health.Server) {
	g := grpc.NewServer(append(TransportOptions(), opts...)...)
	stratav1.RegisterAdminServiceServer(g, adminService{s: s})
	stratav1.RegisterProduceServiceServer(g, produceService{s: s})
	stratav1.RegisterConsumeServiceServer(g, consumeService{s: s})
	stratav1.RegisterMetadataServiceServer(g, metadataService{s: s})
	stratav1.RegisterGroupServiceServer(g, groupService{s: s})
	h := health.NewServer()
	h.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	healthpb.RegisterHealthServer(g, h)
	s.mu.Lock()
	s.health = h
	ready := s.mu.ready
	s.mu.Unlock()
	if ready {
		h.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	}
	reflection.Register(g)
	return g, h
}

// TransportOptions are the broker's gRPC transport settings: message
// limits, flow-control windows, buffers (rpcbuf's pool and codec) and
// keepalive.
func TransportOptions() []grpc.ServerOption {
	return append(rpcbuf.ServerOptions(),
		grpc.MaxRecvMsgSize(MaxRequestBytes+1<<20),
		grpc.MaxSendMsgSize(MaxRequestBytes+1<<20),
		grpc.InitialWindowSize(4<<20), grpc.InitialConnWindowSize(16<<20),
		grpc.WriteBufferSize(256<<10), grpc.ReadBufferSize(256<<10),
		// Clients ping every 10 s with open streams (client.Client does).
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
	)
}

// StopGRPC stops g for a clean shutdown: streams end (BeginShutdown),
// in-flight requests finish for at most timeout, then the rest is cut. It
// reports whether everything finished in time.
func (s *Server) StopGRPC(g *grpc.Server, timeout time.Duration) bool {
	s.BeginShutdown()
	stopped := make(chan struct{})
	go func() { g.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
		return true
	case <-time.After(timeout):
		g.Stop()
		return false
	}
}
