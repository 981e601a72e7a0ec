import "uplot/dist/uPlot.min.css";
import { useElementSize } from "@mantine/hooks";
import { useEffect, useRef } from "react";
import uPlot from "uplot";

/** A uPlot chart that fills its container's width; `data` updates are cheap (setData, no rebuild). */
export function Chart({
  options,
  data,
  height = 220,
  label,
}: {
  options: Omit<uPlot.Options, "width" | "height">;
  data: uPlot.AlignedData;
  height?: number;
  label: string;
}) {
  const { ref, width } = useElementSize();
  const plot = useRef<uPlot | null>(null);
  const holder = useRef<HTMLDivElement>(null);

  useEffect(() => {
    if (!holder.current || width === 0) return;
    plot.current = new uPlot({ ...options, width, height }, data, holder.current);
    return () => {
      plot.current?.destroy();
      plot.current = null;
    };
    // rebuilt when the options change (callers memoise them), resized below
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [options, height, width === 0]);

  useEffect(() => {
    if (plot.current && width > 0) plot.current.setSize({ width, height });
  }, [width, height]);

  useEffect(() => {
    plot.current?.setData(data);
  }, [data]);

  return (
    <div ref={ref} role="img" aria-label={label} style={{ width: "100%" }}>
      <div ref={holder} />
    </div>
  );
}
