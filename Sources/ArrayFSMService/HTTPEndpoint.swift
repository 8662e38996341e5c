// ArrayFSMService — the processor: command batches from Kafka, one transaction each, the outbox
// and its relay, readiness and metrics. Uses ArrayFSM for the domain and Kafka for the wire.
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle

/// A small HTTP server for operators: `GET /metrics` (Prometheus text), `GET /health`
/// (the process is up), `GET /ready` (200 when nothing keeps the service from working, else 503
/// with the reasons).
///
/// Plain SwiftNIO: a full web framework would be most of the build for three routes.
public final class HTTPEndpoint: Service, Sendable {
    let host: String
    let port: Int
    let metrics: @Sendable () -> [UInt8]
    let unready: @Sendable () -> [String]
    let logger: Logger

    /// - Parameter unready: what keeps the service from being ready now; empty: ready.
    public init(host: String = "0.0.0.0", port: Int, metrics: @escaping @Sendable () -> [UInt8],
                unready: @escaping @Sendable () -> [String], logger: Logger) {
        self.host = host
        self.port = port
        self.metrics = metrics
        self.unready = unready
        self.logger = logger
    }

    public func run() async throws {
        let metrics = self.metrics
        let unready = self.unready
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline().flatMap {
                    channel.pipeline.addHandler(Responder(metrics: metrics, unready: unready))
                }
            }
            .bind(host: host, port: port).get()
        logger.info("metrics and health endpoint listening", metadata: ["address": "\(channel.localAddress.map { "\($0)" } ?? "?")"])
        await withGracefulShutdownHandler {
            try? await channel.closeFuture.get()
        } onGracefulShutdown: {
            channel.close(promise: nil)
        }
    }

    final class Responder: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart

        let metrics: @Sendable () -> [UInt8]
        let unready: @Sendable () -> [String]
        var path = ""

        init(metrics: @escaping @Sendable () -> [UInt8], unready: @escaping @Sendable () -> [String]) {
            self.metrics = metrics
            self.unready = unready
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                path = head.uri
            case .body:
                break
            case .end:
                let (status, type, body): (HTTPResponseStatus, String, [UInt8])
                switch path.split(separator: "?").first.map(String.init) ?? "" {
                case "/metrics": (status, type, body) = (.ok, "text/plain; version=0.0.4", metrics())
                case "/health": (status, type, body) = (.ok, "text/plain", Array("ok\n".utf8))
                case "/ready":
                    let reasons = unready()
                    (status, type, body) = reasons.isEmpty ? (.ok, "text/plain", Array("ready\n".utf8))
                        : (.serviceUnavailable, "text/plain", Array("not ready: \(reasons.joined(separator: "; "))\n".utf8))
                default: (status, type, body) = (.notFound, "text/plain", Array("not found\n".utf8))
                }
                var headers = HTTPHeaders()
                headers.add(name: "Content-Type", value: type)
                headers.add(name: "Content-Length", value: String(body.count))
                headers.add(name: "Connection", value: "close")
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
                context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in context.close(promise: nil) }
            }
        }
    }
}
