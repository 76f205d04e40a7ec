// load_video through FFmpeg's libraries: one pass counting the video stream's packets
// (the frame count the sampling needs), a second decoding in display order and converting
// only the kept frames.
#include <algorithm>
#include <memory>
#include <string>

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libavutil/log.h>
#include <libswscale/swscale.h>
}

#include "lmx/base/error.h"
#include "lmx/vision/video_decode.h"

namespace lmx::vision {
namespace {

std::string av_message(int code) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {};
  av_strerror(code, buf, sizeof(buf));
  return buf;
}

struct FormatCloser {
  void operator()(AVFormatContext* f) const { avformat_close_input(&f); }
};
struct CodecFreer {
  void operator()(AVCodecContext* c) const { avcodec_free_context(&c); }
};
struct FrameFreer {
  void operator()(AVFrame* f) const { av_frame_free(&f); }
};
struct PacketFreer {
  void operator()(AVPacket* p) const { av_packet_free(&p); }
};
struct SwsFreer {
  void operator()(SwsContext* s) const { sws_freeContext(s); }
};
using Format = std::unique_ptr<AVFormatContext, FormatCloser>;

// The opened file and its best video stream.
struct Opened {
  Format format;
  int stream = -1;
};

Opened open_video(const std::string& name) {
  av_log_set_level(AV_LOG_QUIET);
  AVFormatContext* raw = nullptr;
  if (int rc = avformat_open_input(&raw, name.c_str(), nullptr, nullptr); rc < 0) {
    if (rc == AVERROR(ENOENT) || rc == AVERROR(EACCES)) throw IoError(name + ": cannot open (" + av_message(rc) + ")");
    throw FormatError(name + ": not a video FFmpeg can read (" + av_message(rc) + ")");
  }
  Opened o{Format(raw), -1};
  if (int rc = avformat_find_stream_info(raw, nullptr); rc < 0) {
    throw FormatError(name + ": cannot read the streams (" + av_message(rc) + ")");
  }
  o.stream = av_find_best_stream(raw, AVMEDIA_TYPE_VIDEO, -1, -1, nullptr, 0);
  if (o.stream < 0) throw InvalidArgument(name + ": has no video stream");
  return o;
}

const char* pix_name(int format) {
  const char* n = av_get_pix_fmt_name(static_cast<AVPixelFormat>(format));
  return n ? n : "?";
}

}  // namespace

bool video_support() { return true; }

Video load_video(const std::filesystem::path& path, const FrameSelector& select, const VideoLimits& limits) {
  const std::string name = path.string();
  Video video;
  video.source = name;
  {
    Opened o = open_video(name);
    const AVStream* st = o.format->streams[o.stream];
    const AVCodecParameters* par = st->codecpar;
    video.info.width = par->width;
    video.info.height = par->height;
    if (par->width <= 0 || par->height <= 0) throw InvalidArgument(name + ": the video stream has no frame size");
    if (static_cast<int64_t>(par->width) * par->height > limits.max_pixels) {
      throw InvalidArgument(name + ": " + std::to_string(par->width) + "x" + std::to_string(par->height) +
                            " frames exceed the limit of " + std::to_string(limits.max_pixels) + " pixels");
    }
    AVRational rate = st->avg_frame_rate.num > 0 && st->avg_frame_rate.den > 0 ? st->avg_frame_rate : st->r_frame_rate;
    video.info.fps = rate.num > 0 && rate.den > 0 ? av_q2d(rate) : 0.0;
    std::unique_ptr<AVPacket, PacketFreer> pkt(av_packet_alloc());
    int rc = 0;
    while ((rc = av_read_frame(o.format.get(), pkt.get())) >= 0) {
      if (pkt->stream_index == o.stream) ++video.info.frames;
      av_packet_unref(pkt.get());
    }
    if (rc != AVERROR_EOF) throw FormatError(name + ": cannot read the video (" + av_message(rc) + ")");
  }
  if (video.info.frames == 0) throw InvalidArgument(name + ": the video stream has no frames");
  std::vector<int64_t> keep;
  if (select) {
    keep = select(video.info);
  } else {
    keep.resize(static_cast<size_t>(video.info.frames));
    for (size_t i = 0; i < keep.size(); ++i) keep[i] = static_cast<int64_t>(i);
  }
  if (keep.empty()) throw InvalidArgument(name + ": no frames selected");
  for (size_t i = 0; i < keep.size(); ++i) {
    if (keep[i] < 0 || keep[i] >= video.info.frames || (i > 0 && keep[i] < keep[i - 1])) {
      throw InvalidArgument(name + ": frame selection must be non-decreasing indices below " +
                            std::to_string(video.info.frames));
    }
  }
  const int64_t frame_bytes = 3LL * video.info.width * video.info.height;
  if (static_cast<int64_t>(keep.size()) > limits.max_frames ||
      static_cast<int64_t>(keep.size()) * frame_bytes > limits.max_bytes) {
    throw InvalidArgument(name + ": " + std::to_string(keep.size()) + " frames of " + std::to_string(video.info.width) +
                          "x" + std::to_string(video.info.height) + " exceed the limits (" +
                          std::to_string(limits.max_frames) + " frames, " + std::to_string(limits.max_bytes) +
                          " bytes)");
  }

  Opened o = open_video(name);
  const AVCodecParameters* par = o.format->streams[o.stream]->codecpar;
  const AVCodec* codec = avcodec_find_decoder(par->codec_id);
  if (!codec) throw Unsupported(name + ": no decoder for codec '" + avcodec_get_name(par->codec_id) + "'");
  std::unique_ptr<AVCodecContext, CodecFreer> dec(avcodec_alloc_context3(codec));
  if (!dec) throw OutOfMemory(name + ": cannot allocate a decoder");
  if (avcodec_parameters_to_context(dec.get(), par) < 0) throw FormatError(name + ": bad codec parameters");
  dec->thread_count = 1;
  if (int rc = avcodec_open2(dec.get(), codec, nullptr); rc < 0) {
    throw FormatError(name + ": cannot open the decoder (" + av_message(rc) + ")");
  }
  std::unique_ptr<AVPacket, PacketFreer> pkt(av_packet_alloc());
  std::unique_ptr<AVFrame, FrameFreer> frame(av_frame_alloc());
  std::unique_ptr<SwsContext, SwsFreer> sws;
  int64_t index = 0;
  size_t next = 0;
  auto take_frames = [&]() {
    for (;;) {
      int rc = avcodec_receive_frame(dec.get(), frame.get());
      if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return;
      if (rc < 0) throw FormatError(name + ": cannot decode frame " + std::to_string(index) + " (" + av_message(rc) + ")");
      if (frame->width != video.info.width || frame->height != video.info.height) {
        throw FormatError(name + ": frame " + std::to_string(index) + " is " + std::to_string(frame->width) + "x" +
                          std::to_string(frame->height) + ", the stream declares " + std::to_string(video.info.width) +
                          "x" + std::to_string(video.info.height));
      }
      if (next < keep.size() && keep[next] == index) {
        // The ffmpeg CLI's default conversion: bicubic swscale, the frame's matrix and range.
        sws.reset(sws_getCachedContext(sws.release(), frame->width, frame->height,
                                       static_cast<AVPixelFormat>(frame->format), frame->width, frame->height,
                                       AV_PIX_FMT_RGB24, SWS_BICUBIC, nullptr, nullptr, nullptr));
        if (!sws) throw Unsupported(name + ": cannot convert pixel format '" +
                                    std::string(pix_name(frame->format)) +
                                    "' to RGB");
        int cs = frame->colorspace == AVCOL_SPC_UNSPECIFIED ? SWS_CS_DEFAULT : static_cast<int>(frame->colorspace);
        const int* table = sws_getCoefficients(cs);
        sws_setColorspaceDetails(sws.get(), table, frame->color_range == AVCOL_RANGE_JPEG, sws_getCoefficients(SWS_CS_DEFAULT),
                                 1, 0, 1 << 16, 1 << 16);
        Image img = make_image(frame->width, frame->height);
        img.source = name + " frame " + std::to_string(index);
        uint8_t* dst[4] = {img.rgb.data(), nullptr, nullptr, nullptr};
        int stride[4] = {3 * frame->width, 0, 0, 0};
        sws_scale(sws.get(), frame->data, frame->linesize, 0, frame->height, dst, stride);
        // A frame selected more than once (a sampling that repeats it) is kept as often.
        for (; next < keep.size() && keep[next] == index; ++next) {
          video.frames.push_back(img);
          video.indices.push_back(index);
        }
      }
      ++index;
      av_frame_unref(frame.get());
    }
  };
  int rc = 0;
  while (next < keep.size() && (rc = av_read_frame(o.format.get(), pkt.get())) >= 0) {
    if (pkt->stream_index == o.stream) {
      int s = avcodec_send_packet(dec.get(), pkt.get());
      av_packet_unref(pkt.get());
      if (s < 0 && s != AVERROR(EAGAIN)) {
        throw FormatError(name + ": corrupt video data near frame " + std::to_string(index) + " (" + av_message(s) + ")");
      }
      take_frames();
    } else {
      av_packet_unref(pkt.get());
    }
  }
  if (rc < 0 && rc != AVERROR_EOF) throw FormatError(name + ": cannot read the video (" + av_message(rc) + ")");
  if (next < keep.size()) {
    avcodec_send_packet(dec.get(), nullptr);  // drain
    take_frames();
  }
  if (next < keep.size()) {
    throw FormatError(name + ": frame " + std::to_string(keep[next]) + " could not be decoded (" +
                      std::to_string(index) + " of " + std::to_string(video.info.frames) + " frames decoded)");
  }
  return video;
}

}  // namespace lmx::vision
