import { measuredChange } from '../test/api';
import { changeSentences, dueWords } from './LesionParts';

describe('changeSentences', () => {
  it('says "about the same" rather than +0% when nothing moved', () => {
    const change = measuredChange({ measurements: { area_ratio: 1.002, diameter_change: 0.001, colour_delta_e: 0.04, significant: [] } });
    expect(changeSentences(change)).toEqual([
      'Area: about the same as the last photo (100%).',
      'Largest diameter: unchanged.',
      'Colour difference: ΔE 0.0 (hardly visible).',
    ]);
  });

  it('leaves out what was not measured', () => {
    expect(changeSentences(measuredChange({ measurements: { colour_delta_e: 9.6 } }))).toEqual(['Colour difference: ΔE 9.6 (a marked difference).']);
  });
});

describe('dueWords', () => {
  it('words overdue, today and upcoming follow-ups', () => {
    expect(dueWords(1)).toBe('1 day overdue');
    expect(dueWords(0)).toBe('due today');
    expect(dueWords(-12)).toBe('due in 12 days');
  });
});
