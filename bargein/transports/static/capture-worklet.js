// Microphone capture: Float32 render quanta in, PCM16 little-endian frames of a fixed size out.
// Runs on the audio thread; the main thread only forwards the frames to the WebSocket.
class Pcm16Capture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    this.frameSamples = options.processorOptions.frameSamples;
    this.frame = new Int16Array(this.frameSamples);
    this.fill = 0;
    this.peak = 0;
  }

  process(inputs) {
    const channels = inputs[0];
    if (!channels || channels.length === 0) return true;
    const n = channels[0].length;
    for (let i = 0; i < n; i++) {
      // Downmix to mono: the protocol carries one channel.
      let s = 0;
      for (let c = 0; c < channels.length; c++) s += channels[c][i];
      s /= channels.length;
      if (s > 1) s = 1; else if (s < -1) s = -1;
      const a = s < 0 ? -s : s;
      if (a > this.peak) this.peak = a;
      this.frame[this.fill++] = s < 0 ? s * 0x8000 : s * 0x7fff;
      if (this.fill === this.frameSamples) {
        // Int16Array is platform-endian; every browser platform is little-endian, as the wire is.
        const buffer = this.frame.buffer;
        this.port.postMessage({ pcm: buffer, peak: this.peak }, [buffer]);
        this.frame = new Int16Array(this.frameSamples);
        this.fill = 0;
        this.peak = 0;
      }
    }
    return true;
  }
}

registerProcessor("pcm16-capture", Pcm16Capture);
