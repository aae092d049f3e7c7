#!/usr/bin/env bash
# Builds the seed corpus of each fuzz target (fuzz/corpus/<target>/, not committed) from the test
# data of crates/med-io and a few hand-written manifests.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
data="$here/../crates/med-io/tests/data"
c="$here/corpus"
mkdir -p "$c"/{dicom_file,dicom_series,nifti,paired_manifest,rspect_manifest}
cp "$data"/dicom/*.dcm "$c/dicom_file/"
cp "$data"/dicom/series_traps/*.dcm "$c/dicom_file/"
# A series: slices joined by the target's split marker.
for dir in series_traps series_two_orientations; do
  out="$c/dicom_series/$dir"
  : > "$out"
  first=1
  for f in "$data/dicom/$dir"/*.dcm; do
    [ $first = 1 ] || printf '\xff\xfe\xfd\xfc' >> "$out"
    cat "$f" >> "$out"
    first=0
  done
done
cp "$data"/*.nii "$data"/*.nii.gz "$c/nifti/"
printf 'CT_Accession_number,cxr_Accession_number,PE\na,b,1\nx,y,0\n' > "$c/paired_manifest/dirs.csv"
printf 'CT_Accession_number,cxr_Accession_number,PE,ct_path,cxr_path\na,b,1,a.nii.gz,b.png\nc,d,0,c.dcm,b.png\n' \
  > "$c/paired_manifest/paths.csv"
printf 'CT_Accession_number,cxr_Accession_number,PE\n"a,1",b,1\nq,r,0\nq,s,1\n' > "$c/paired_manifest/quoted.csv"
printf 'StudyInstanceUID,SeriesInstanceUID,SOPInstanceUID,negative_exam_for_pe,rv_lv_ratio_gte_1\ns1,r1,i1,0,1\ns1,r1,i2,0,1\ns2,r2,i3,1,0\n' \
  > "$c/rspect_manifest/image_level.csv"
printf 'StudyInstanceUID,SeriesInstanceUID,negative_exam_for_pe\ns1,r1,1\ns2,r2,0\n' \
  > "$c/rspect_manifest/exam_level.csv"
echo "seed corpus in $c"
