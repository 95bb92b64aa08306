//! Transcripts made by any external speech-to-text: WebVTT or JSON segments.
