# wsgate: a static binary on a minimal image, running as a non-root user.
#   docker build -t wsgate .
#   docker run --rm -p 8080:8080 wsgate --listen :8080 --backend 10.0.0.5:8010
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/wsgate ./cmd/wsgate

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/wsgate /usr/local/bin/wsgate
USER nonroot:nonroot
# 8080: clients; 9090: the admin API (bind it beyond loopback only with a token).
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/wsgate", "serve"]
