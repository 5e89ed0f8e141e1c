"""A loopback RTSP camera for the tests: GStreamer's RTSP server streaming PNG frames as H.264.

Run by the SYSTEM python (`/usr/bin/python3`, which has the GObject bindings the virtualenv lacks):

    /usr/bin/python3 tests/vision/rtsp_server.py --port 8554 --frames DIR   # DIR/frame-0000.png, ...
    /usr/bin/python3 tests/vision/rtsp_server.py --check                    # exit 1 naming what is missing

serves rtsp://127.0.0.1:PORT/lane: the frames in a loop at --fps, encoded by x264 like an IP camera's
stream. `make system-deps` installs the Debian packages it needs (see the Makefile).
"""

from __future__ import annotations

import argparse
import signal
import sys

ELEMENTS = ("multifilesrc", "pngdec", "videoconvert", "x264enc", "rtph264pay")
PACKAGES = (
    "python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good "
    "gstreamer1.0-plugins-ugly"
)


def missing() -> list[str]:
    """What this script needs and does not find (GObject bindings, RTSP server library, elements)."""
    try:
        import gi

        gi.require_version("Gst", "1.0")
        gi.require_version("GstRtspServer", "1.0")
        from gi.repository import Gst, GstRtspServer  # noqa: F401
    except (ImportError, ValueError) as error:
        return [f"GStreamer RTSP server bindings ({error})"]
    Gst.init(None)
    return [f"GStreamer element {name}" for name in ELEMENTS if Gst.ElementFactory.find(name) is None]


def serve(port: int, frames: str, fps: int) -> None:
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f'( multifilesrc location="{frames}/frame-%04d.png" loop=true caps=image/png,framerate={fps}/1 '
        "! pngdec ! videoconvert ! video/x-raw,format=I420 "
        f"! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} bitrate=4000 "
        "! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )
    factory.set_shared(True)
    server.get_mount_points().add_factory("/lane", factory)
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on 127.0.0.1:{port}")
    loop = GLib.MainLoop()
    for number in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, number, loop.quit)
    print(f"serving rtsp://127.0.0.1:{port}/lane", flush=True)
    loop.run()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that everything needed is here")
    parser.add_argument("--port", type=int, help="TCP port on 127.0.0.1")
    parser.add_argument("--frames", help="folder of frame-0000.png, frame-0001.png, ...")
    parser.add_argument("--fps", type=int, default=25, help="frames a second (FFmpeg probes ~25)")
    args = parser.parse_args()
    absent = missing()
    if absent:
        sys.exit(f"missing: {', '.join(absent)}; install: apt-get install {PACKAGES}")
    if args.check:
        return
    if args.port is None or args.frames is None:
        parser.error("--port and --frames are required to serve")
    serve(args.port, args.frames, args.fps)


if __name__ == "__main__":
    main()
