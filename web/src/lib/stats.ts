export interface Scored {
  label: string;
  score: number;
}

/** Counts of good and defective scores in `bins` equal bins spanning both and the threshold. */
export function histogram(items: Scored[], threshold: number | null, bins = 20) {
  const values = items.map((x) => x.score);
  if (threshold !== null) values.push(threshold);
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  const width = (hi - lo || 1) / bins;
  const centers = Array.from({ length: bins }, (_, i) => lo + width * (i + 0.5));
  const good = new Array(bins).fill(0);
  const bad = new Array(bins).fill(0);
  for (const x of items) {
    const i = Math.min(bins - 1, Math.max(0, Math.floor((x.score - lo) / width)));
    if (x.label === "good") good[i]++;
    else bad[i]++;
  }
  return { centers, good, bad, width };
}

/** ROC points (false-positive rate, true-positive rate), from the highest threshold down, and the AUC. */
export function roc(items: Scored[]) {
  const sorted = [...items].sort((a, b) => b.score - a.score);
  const P = sorted.filter((x) => x.label !== "good").length;
  const N = sorted.length - P;
  const fpr = [0];
  const tpr = [0];
  let tp = 0;
  let fp = 0;
  for (let i = 0; i < sorted.length; i++) {
    if (sorted[i].label === "good") fp++;
    else tp++;
    // one point per distinct score (ties move together)
    if (i === sorted.length - 1 || sorted[i + 1].score !== sorted[i].score) {
      fpr.push(N ? fp / N : 0);
      tpr.push(P ? tp / P : 0);
    }
  }
  let auc = 0;
  for (let i = 1; i < fpr.length; i++) auc += ((fpr[i] - fpr[i - 1]) * (tpr[i] + tpr[i - 1])) / 2;
  return { fpr, tpr, auc: P && N ? auc : NaN };
}

/** Rates at a threshold: false alarms (good at or over it) and misses (defective under it). */
export function ratesAt(items: Scored[], threshold: number) {
  const good = items.filter((x) => x.label === "good");
  const bad = items.filter((x) => x.label !== "good");
  return {
    falseAlarm: good.length ? good.filter((x) => x.score >= threshold).length / good.length : NaN,
    miss: bad.length ? bad.filter((x) => x.score < threshold).length / bad.length : NaN,
  };
}
