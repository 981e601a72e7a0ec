import { useAuthedImage } from "../lib/images";

export function Thumb({ url, alt }: { url: string; alt: string }) {
  const { src } = useAuthedImage(url);
  return src ? <img className="lw-thumb" src={src} alt={alt} loading="lazy" decoding="async" /> : <div className="lw-thumb" aria-hidden />;
}
